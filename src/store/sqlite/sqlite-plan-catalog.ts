/** The SQLite `PlanCatalog`: plans, and which project is on which. One writer: no write interleaves. */
import type { PlanLimits } from "../../domain/plan.js";
import type { PlanCatalog, PlanRecord, SetProjectPlanResult } from "../store.js";
import { toPlanRecord, toProjectRecord, type PlanRow, type ProjectRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import { projectColumns } from "./sqlite-project-catalog.js";

const planColumns = "name, limits, created_at, updated_at";

export class SqlitePlanCatalog implements PlanCatalog {
  constructor(private readonly database: SqliteDatabase) {}

  createPlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null> {
    return this.database.commits.write(() => {
      const row = this.database
        .sql<[string, string, number, number], PlanRow>(
          `INSERT INTO plans (name, limits, created_at, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING RETURNING ${planColumns}`,
        )
        .get(name, JSON.stringify(limits), now.getTime(), now.getTime());
      return row === undefined ? null : toPlanRecord(row);
    }, true);
  }

  getPlan(name: string): Promise<PlanRecord | null> {
    const row = this.database
      .sql<[string], PlanRow>(`SELECT ${planColumns} FROM plans WHERE name = ?`)
      .get(name);
    return Promise.resolve(row === undefined ? null : toPlanRecord(row));
  }

  listPlans(): Promise<PlanRecord[]> {
    const rows = this.database.sql<[], PlanRow>(`SELECT ${planColumns} FROM plans ORDER BY name`).all();
    return Promise.resolve(rows.map(toPlanRecord));
  }

  updatePlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null> {
    return this.database.commits.write(() => {
      const row = this.database
        .sql<[string, number, string], PlanRow>(
          `UPDATE plans SET limits = ?, updated_at = ? WHERE name = ? RETURNING ${planColumns}`,
        )
        .get(JSON.stringify(limits), now.getTime(), name);
      return row === undefined ? null : toPlanRecord(row);
    }, true);
  }

  deletePlan(name: string): Promise<"deleted" | "not_found" | "in_use"> {
    return this.database.commits.write(() => {
      if (this.database.sql("SELECT 1 FROM projects WHERE plan = ? LIMIT 1").get(name) !== undefined) {
        return "in_use" as const;
      }
      const { changes } = this.database.sql("DELETE FROM plans WHERE name = ?").run(name);
      return changes === 1 ? ("deleted" as const) : ("not_found" as const);
    }, true);
  }

  setProjectPlan(project: string, plan: string | null, now: Date): Promise<SetProjectPlanResult> {
    return this.database.commits.write((): SetProjectPlanResult => {
      // The project first, as PostgreSQL answers (its update finds no row before the plan is checked).
      if (this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(project) === undefined) {
        return "project_not_found";
      }
      if (plan !== null && this.database.sql("SELECT 1 FROM plans WHERE name = ?").get(plan) === undefined) {
        return "plan_not_found";
      }
      const row = this.database
        .sql<[string | null, number, string], ProjectRow>(
          `UPDATE projects SET plan = ?, updated_at = ? WHERE name = ? RETURNING ${projectColumns}`,
        )
        .get(plan, now.getTime(), project);
      return row === undefined ? "project_not_found" : toProjectRecord(row);
    }, true);
  }

  planOfProject(project: string): Promise<PlanRecord | null> {
    const row = this.database
      .sql<[string], PlanRow>(
        `SELECT p.name, p.limits, p.created_at, p.updated_at
           FROM projects j JOIN plans p ON p.name = j.plan WHERE j.name = ?`,
      )
      .get(project);
    return Promise.resolve(row === undefined ? null : toPlanRecord(row));
  }

  listProjectsOnPlan(plan: string): Promise<string[]> {
    const rows = this.database
      .sql<[string], { name: string }>("SELECT name FROM projects WHERE plan = ? ORDER BY name")
      .all(plan);
    return Promise.resolve(rows.map((row) => row.name));
  }
}
