/**
 * The PostgreSQL `PlanCatalog`. A project is put on a plan through its foreign key, whose check holds
 * the plan's row KEY SHARE; a plan's deletion holds it FOR UPDATE before it looks for projects on it.
 * So an assignment and a deletion at once on two nodes take turns: the assignment commits first and
 * the deletion finds the plan in use, or the deletion commits first and the assignment finds no plan.
 */
import type { PlanLimits } from "../../domain/plan.js";
import type { PlanCatalog, PlanRecord, SetProjectPlanResult } from "../store.js";
import { toPlanRecord, toProjectRecord, type PlanRow, type ProjectRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { projectColumns } from "./postgres-project-catalog.js";

const planColumns = "name, limits, created_at, updated_at";
/** SQLSTATE of a foreign key violation: here, a project put on a plan that does not exist. */
const foreignKeyViolation = "23503";

export class PostgresPlanCatalog implements PlanCatalog {
  constructor(private readonly connections: PostgresConnections) {}

  async createPlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null> {
    // $1 name, $2 limits (JSON), $3 now (epoch ms)
    const { rows } = await this.connections.db.query<PlanRow>({
      text: `INSERT INTO plans (name, limits, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT DO NOTHING RETURNING ${planColumns}`,
      values: [name, JSON.stringify(limits), now.getTime()],
    });
    return rows[0] === undefined ? null : toPlanRecord(rows[0]);
  }

  async getPlan(name: string): Promise<PlanRecord | null> {
    const { rows } = await this.connections.db.query<PlanRow>({
      text: `SELECT ${planColumns} FROM plans WHERE name = $1`,
      values: [name],
    });
    return rows[0] === undefined ? null : toPlanRecord(rows[0]);
  }

  async listPlans(): Promise<PlanRecord[]> {
    const { rows } = await this.connections.db.query<PlanRow>({
      text: `SELECT ${planColumns} FROM plans ORDER BY name COLLATE "C"`,
    });
    return rows.map(toPlanRecord);
  }

  async updatePlan(name: string, limits: PlanLimits, now: Date): Promise<PlanRecord | null> {
    // $1 name, $2 limits (JSON), $3 now (epoch ms)
    const { rows } = await this.connections.db.query<PlanRow>({
      text: `UPDATE plans SET limits = $2, updated_at = $3 WHERE name = $1 RETURNING ${planColumns}`,
      values: [name, JSON.stringify(limits), now.getTime()],
    });
    return rows[0] === undefined ? null : toPlanRecord(rows[0]);
  }

  deletePlan(name: string): Promise<"deleted" | "not_found" | "in_use"> {
    return this.connections.transaction(async (db) => {
      // $1 plan in every statement
      const locked = await db.query({
        text: "SELECT 1 FROM plans WHERE name = $1 FOR UPDATE",
        values: [name],
      });
      if (locked.rowCount === 0) return "not_found" as const;
      const used = await db.query({ text: "SELECT 1 FROM projects WHERE plan = $1 LIMIT 1", values: [name] });
      if (used.rowCount !== 0) return "in_use" as const;
      await db.query({ text: "DELETE FROM plans WHERE name = $1", values: [name] });
      return "deleted" as const;
    });
  }

  async setProjectPlan(project: string, plan: string | null, now: Date): Promise<SetProjectPlanResult> {
    try {
      // $1 project, $2 plan (null: none), $3 now (epoch ms)
      const { rows } = await this.connections.db.query<ProjectRow>({
        text: `UPDATE projects SET plan = $2, updated_at = $3 WHERE name = $1 RETURNING ${projectColumns}`,
        values: [project, plan, now.getTime()],
      });
      return rows[0] === undefined ? "project_not_found" : toProjectRecord(rows[0]);
    } catch (error) {
      if ((error as { code?: unknown }).code === foreignKeyViolation) return "plan_not_found";
      throw error;
    }
  }

  async planOfProject(project: string): Promise<PlanRecord | null> {
    const { rows } = await this.connections.db.query<PlanRow>({
      text: `SELECT p.name, p.limits, p.created_at, p.updated_at
               FROM projects j JOIN plans p ON p.name = j.plan WHERE j.name = $1`,
      values: [project],
    });
    return rows[0] === undefined ? null : toPlanRecord(rows[0]);
  }

  async listProjectsOnPlan(plan: string): Promise<string[]> {
    const { rows } = await this.connections.db.query<{ name: string }>({
      text: `SELECT name FROM projects WHERE plan = $1 ORDER BY name COLLATE "C"`,
      values: [plan],
    });
    return rows.map((row) => row.name);
  }
}
