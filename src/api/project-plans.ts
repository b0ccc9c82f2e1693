/**
 * The plan each project is on, as the API checks settings and tasks against it: read from the store
 * and cached for a second, so a task creation costs no extra store read and a change of plan reaches
 * every node within that time. The checks are not in the transaction of the write they guard: a
 * deploy that races a plan being lowered can land just over the new limit.
 */
import { KilnError } from "../domain/errors.js";
import { noLimits, planViolations, type PlanLimits, type PlanViolation } from "../domain/plan.js";
import type { FunctionCatalog } from "../store/function-catalog.js";
import type { PlanCatalog } from "../store/plan-catalog.js";

export interface ProjectPlan {
  /** Null when the project is on no plan. */
  name: string | null;
  limits: PlanLimits;
}

const ttlMs = 1000;

export class ProjectPlans {
  private readonly cache = new Map<string, { plan: Promise<ProjectPlan>; readAtMs: number }>();

  constructor(private readonly store: PlanCatalog) {}

  of(project: string): Promise<ProjectPlan> {
    const cached = this.cache.get(project);
    if (cached !== undefined && Date.now() - cached.readAtMs < ttlMs) return cached.plan;
    const plan = this.store
      .planOfProject(project)
      .then((record) => (record === null ? { name: null, limits: noLimits } : record));
    this.cache.set(project, { plan, readAtMs: Date.now() });
    plan.catch(() => this.cache.delete(project));
    return plan;
  }

  /** A plan or a project's plan changed through this node: it is read again at the next check. */
  forget(): void {
    this.cache.clear();
  }
}

/** The 400 for settings over the plan, each violation named by `field(violation)`. */
export function overPlanLimit(
  plan: string,
  violations: readonly PlanViolation[],
  field: (violation: PlanViolation) => string = (violation) => violation.field,
): KilnError {
  const errors = violations.map((violation) => ({
    field: field(violation),
    message: `${field(violation)} ${violation.value} is over the limit of plan '${plan}' (at most ${violation.limit})`,
  }));
  return new KilnError("OVER_PLAN_LIMIT", errors.map((error) => error.message).join("; "), {
    details: { plan, errors },
  });
}

/** Refuses limits that a function of one of `projects` is over, naming each such function. */
export async function checkProjectsFitPlan(
  store: FunctionCatalog,
  plan: string,
  limits: PlanLimits,
  projects: readonly string[],
): Promise<void> {
  const errors: { field: string; message: string }[] = [];
  for (const project of projects) {
    for (const fn of await store.listFunctions(project)) {
      for (const violation of planViolations(limits, fn.settings)) {
        errors.push({
          field: "plan",
          message: `function '${fn.name}' of project '${project}' has ${violation.field} ${violation.value}, over the limit of plan '${plan}' (at most ${violation.limit})`,
        });
      }
    }
  }
  if (errors.length === 0) return;
  const shown = errors.slice(0, 20);
  throw new KilnError(
    "OVER_PLAN_LIMIT",
    `${shown.map((error) => error.message).join("; ")}; lower their settings first`,
    {
      details: { plan, errors: shown },
    },
  );
}
