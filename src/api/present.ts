/** How records leave the API: JSON with ISO times, and never a function's env values. */
import type { Task } from "../domain/task.js";
import type {
  FunctionRecord,
  PlanRecord,
  ProjectContents,
  ProjectRecord,
  RevisionRecord,
  TokenRecord,
} from "../store/store.js";

export function presentFunction(fn: FunctionRecord) {
  const { env, ...settings } = fn.settings;
  return {
    project: fn.project,
    name: fn.name,
    currentRevision: fn.currentRevision,
    runtime: fn.spec.runtime,
    entry: fn.spec.entry,
    ...settings,
    envKeys: Object.keys(env).sort(),
    createdAt: fn.createdAt.toISOString(),
    updatedAt: fn.updatedAt.toISOString(),
  };
}

export function presentRevision(revision: RevisionRecord, currentRevision: string) {
  return {
    digest: revision.digest,
    runtime: revision.spec.runtime,
    entry: revision.spec.entry,
    sizeBytes: revision.sizeBytes,
    createdAt: revision.createdAt.toISOString(),
    current: revision.digest === currentRevision,
  };
}

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

export function presentTask(task: Task, created?: boolean) {
  return {
    id: task.id,
    project: task.project,
    function: task.functionName,
    revision: task.revision,
    state: task.state,
    priority: task.priority,
    label: task.label,
    idempotencyKey: task.idempotencyKey,
    timeoutS: task.timeoutS,
    payload: task.payload,
    createdAt: task.createdAt.toISOString(),
    runAt: task.runAt.toISOString(),
    startedAt: iso(task.startedAt),
    finishedAt: iso(task.finishedAt),
    startLatencyMs: task.startLatencyMs,
    attempts: task.attempts.map((attempt) => ({
      ...attempt,
      startedAt: attempt.startedAt.toISOString(),
      finishedAt: attempt.finishedAt.toISOString(),
    })),
    result: task.result,
    failure: task.failure,
    progress: task.progress,
    ...(created === undefined ? {} : { created }),
  };
}

export function presentProject(project: ProjectRecord, contents?: ProjectContents, plan?: PlanRecord | null) {
  return {
    name: project.name,
    description: project.description,
    plan: project.plan,
    ...(plan === undefined ? {} : { limits: plan === null ? null : presentPlan(plan) }),
    createdAt: project.createdAt.toISOString(),
    updatedAt: project.updatedAt.toISOString(),
    ...(contents === undefined ? {} : { usage: contents }),
  };
}

/** A token as listed: never its secret, which only the answer that created it holds. */
export function presentToken(token: TokenRecord) {
  return {
    id: token.id,
    name: token.name,
    role: token.scope.kind === "admin" ? "admin" : token.scope.role,
    project: token.scope.kind === "admin" ? null : token.scope.project,
    createdAt: token.createdAt.toISOString(),
    expiresAt: token.expiresAt?.toISOString() ?? null,
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
  };
}

export function presentPlan(plan: PlanRecord, projects?: readonly string[]) {
  return {
    name: plan.name,
    ...plan.limits,
    createdAt: plan.createdAt.toISOString(),
    updatedAt: plan.updatedAt.toISOString(),
    ...(projects === undefined ? {} : { projects }),
  };
}
