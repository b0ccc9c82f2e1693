/** The `PlanCatalog` port: plans (named sets of limits) and which project is on which plan. */
import type { PlanLimits } from "../domain/plan.js";
import type { ProjectRecord } from "./project-catalog.js";

export interface PlanRecord {
  name: string;
  limits: PlanLimits;
  createdAt: Date;
  updatedAt: Date;
}

export type SetProjectPlanResult = ProjectRecord | "project_not_found" | "plan_not_found";

export interface PlanCatalog {
  /** Null when a plan of that name exists already (which is left as it was). */
  createPlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null>;
  getPlan(name: string): Promise<PlanRecord | null>;
  /** By name. */
  listPlans(): Promise<PlanRecord[]>;
  /**
   * Replaces the plan's limits whole (one left null is no longer set); `updatedAt` becomes `now`. Null
   * when there is no such plan.
   */
  updatePlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null>;
  /**
   * Refused (`in_use`) while a project is on the plan. A project put on the plan at the same time (on
   * any node) either is seen, and the deletion refused, or is answered `plan_not_found`.
   */
  deletePlan(name: string): Promise<"deleted" | "not_found" | "in_use">;
  /**
   * Puts the project on the plan, or with null on none; `updatedAt` becomes `now`. Answers with the
   * project as it now is; a project that does not exist is answered before a plan that does not.
   */
  setProjectPlan(project: string, plan: string | null, now: Date): Promise<SetProjectPlanResult>;
  /** The plan the project is on; null when it is on none, or there is no such project. */
  planOfProject(project: string): Promise<PlanRecord | null>;
  /** The names of the projects on the plan, by name. */
  listProjectsOnPlan(plan: string): Promise<string[]>;
}
