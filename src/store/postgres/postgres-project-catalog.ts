/**
 * The PostgreSQL `ProjectCatalog`: projects, and the deletion of one with everything it holds, in one
 * transaction that other nodes' enqueues, retries, deploys and new lanes into the project cannot slip
 * into (the locking argument is at `deleteProject`).
 */
import type { DeleteProjectResult, ProjectCatalog, ProjectContents, ProjectRecord } from "../store.js";
import { toProjectRecord, type ProjectRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import type { Queryable } from "./statements.js";

export const projectColumns = "name, description, plan, created_at, updated_at";

/**
 * The project's queued, delayed and running tasks, counted where they wait rather than by state: those
 * tables hold only unfinished tasks, so this reads no finished one. $1 the project.
 */
const countUnfinishedSql = `SELECT
    (SELECT count(*) FROM ready WHERE lane_id IN (SELECT id FROM lanes WHERE project = $1))
  + (SELECT count(*) FROM delayed WHERE lane_id IN (SELECT id FROM lanes WHERE project = $1))
  + (SELECT count(*) FROM running r JOIN tasks t ON t.seq = r.seq WHERE t.project = $1) AS unfinished`;

export class PostgresProjectCatalog implements ProjectCatalog {
  constructor(private readonly connections: PostgresConnections) {}

  async ensureProject(name: string, now: Date): Promise<void> {
    // $1 name, $2 now (epoch ms)
    await this.connections.db.query({
      text: `INSERT INTO projects (name, description, created_at, updated_at) VALUES ($1, '', $2, $2)
               ON CONFLICT DO NOTHING`,
      values: [name, now.getTime()],
    });
  }

  async hasProject(name: string): Promise<boolean> {
    const { rowCount } = await this.connections.db.query({
      text: "SELECT 1 FROM projects WHERE name = $1",
      values: [name],
    });
    return rowCount !== 0;
  }

  async createProject(name: string, description: string, now: Date): Promise<ProjectRecord | null> {
    // $1 name, $2 description, $3 now
    const { rows } = await this.connections.db.query<ProjectRow>({
      text: `INSERT INTO projects (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3)
               ON CONFLICT DO NOTHING RETURNING ${projectColumns}`,
      values: [name, description, now.getTime()],
    });
    return rows[0] === undefined ? null : toProjectRecord(rows[0]);
  }

  async getProject(name: string): Promise<ProjectRecord | null> {
    const { rows } = await this.connections.db.query<ProjectRow>({
      text: `SELECT ${projectColumns} FROM projects WHERE name = $1`,
      values: [name],
    });
    return rows[0] === undefined ? null : toProjectRecord(rows[0]);
  }

  async listProjects(): Promise<ProjectRecord[]> {
    // COLLATE "C": by code point, as SQLite sorts, whatever the database's collation
    const { rows } = await this.connections.db.query<ProjectRow>({
      text: `SELECT ${projectColumns} FROM projects ORDER BY name COLLATE "C"`,
    });
    return rows.map(toProjectRecord);
  }

  async updateProject(
    name: string,
    change: { description?: string },
    now: Date,
  ): Promise<ProjectRecord | null> {
    // $1 name, $2 description (null: unchanged), $3 now. A key-preserving update: it does not wait for
    // enqueues, which hold the row KEY SHARE.
    const { rows } = await this.connections.db.query<ProjectRow>({
      text: `UPDATE projects SET description = coalesce($2, description), updated_at = $3 WHERE name = $1
               RETURNING ${projectColumns}`,
      values: [name, change.description ?? null, now.getTime()],
    });
    return rows[0] === undefined ? null : toProjectRecord(rows[0]);
  }

  async callbackSecret(project: string, candidate: string): Promise<string | null> {
    // $1 project. Read in a statement after the update, so a secret a racing node stored is seen.
    const read = { text: "SELECT callback_secret FROM projects WHERE name = $1", values: [project] };
    const { rows } = await this.connections.db.query<{ callback_secret: string | null }>(read);
    if (rows[0] === undefined) return null;
    if (rows[0].callback_secret !== null) return rows[0].callback_secret;
    await this.connections.db.query({
      text: "UPDATE projects SET callback_secret = $2 WHERE name = $1 AND callback_secret IS NULL",
      values: [project, candidate],
    });
    const again = await this.connections.db.query<{ callback_secret: string | null }>(read);
    return again.rows[0]?.callback_secret ?? null;
  }

  async rotateCallbackSecret(project: string, secret: string, now: Date): Promise<boolean> {
    // $1 project, $2 secret, $3 now (epoch ms)
    const { rowCount } = await this.connections.db.query({
      text: "UPDATE projects SET callback_secret = $2, updated_at = $3 WHERE name = $1",
      values: [project, secret, now.getTime()],
    });
    return rowCount === 1;
  }

  async countProjectContents(name: string): Promise<ProjectContents> {
    // $1 project
    const { rows } = await this.connections.db.query<{ functions: number; unfinished: number }>({
      text: `SELECT (SELECT count(*) FROM functions WHERE project = $1) AS functions,
                    (${countUnfinishedSql}) AS unfinished`,
      values: [name],
    });
    return { functions: rows[0]?.functions ?? 0, unfinishedTasks: rows[0]?.unfinished ?? 0 };
  }

  /**
   * Locking: the first statement locks the project's row FOR UPDATE for the whole transaction. Every
   * write that could leave something in the project holds that row KEY SHARE first, until it commits:
   * an enqueue (`insertTasks`) and a manual retry (`requeueFinishedTask`), which are the only ways a
   * task becomes unfinished other than from another unfinished state; the creation of a lane
   * (`PostgresLaneIds`); a deploy; a token (its foreign key). So each of them either committed before
   * the lock was granted, and the count and the deletes below (later statements, later snapshots) see
   * it, or waits for this transaction and then finds the project gone. Once the count is 0 with the row
   * locked, it stays 0: claims, ends, releases, cancels and recoveries only move unfinished tasks.
   *
   * Archives: each one the project's revisions used is locked FOR UPDATE before it is checked for other
   * revisions, so a deploy of the same content into another project that holds it (see
   * `deployRevision`) is waited for and keeps it, and one that comes later waits and puts it back.
   */
  deleteProject(name: string): Promise<DeleteProjectResult> {
    return this.connections
      .transaction(async (db): Promise<DeleteProjectResult> => {
        const values = [name];
        // $1 project in every statement
        const { rowCount } = await db.query({
          text: "SELECT 1 FROM projects WHERE name = $1 FOR UPDATE",
          values,
        });
        if (rowCount === 0) return { deleted: false, reason: "not_found" };
        const { rows } = await db.query<{ unfinished: number }>({ text: countUnfinishedSql, values });
        const unfinished = rows[0]?.unfinished ?? 0;
        if (unfinished > 0)
          return { deleted: false, reason: "unfinished_tasks", unfinishedTasks: unfinished };
        await deleteTasks(db, name);
        const { rows: revisions } = await db.query<{ digest: string }>({
          text: "DELETE FROM revisions WHERE project = $1 RETURNING digest",
          values,
        });
        await db.query({ text: "DELETE FROM functions WHERE project = $1", values });
        await db.query({ text: "DELETE FROM lanes WHERE project = $1", values });
        await db.query({ text: "DELETE FROM function_slots WHERE project = $1", values });
        await db.query({ text: "DELETE FROM tokens WHERE project = $1", values });
        await deleteUnusedArchives(db, [...new Set(revisions.map((row) => row.digest))]);
        await db.query({ text: "DELETE FROM projects WHERE name = $1", values });
        return { deleted: true };
      })
      .then((result) => {
        if (result.deleted) {
          this.connections.laneIds.forgetProject(name);
          this.connections.announce.projectDeleted(name);
        }
        return result;
      });
  }
}

/**
 * Deletes the project's tasks with their payloads, results, attempts, logs and callbacks. None of them
 * is in `ready`, `delayed` or `running`: the deletion counted none there, with the project locked.
 */
async function deleteTasks(db: Queryable, project: string): Promise<void> {
  // $1 project
  await db.query({
    text: `WITH gone AS (DELETE FROM tasks WHERE project = $1 RETURNING seq),
             payloads AS (DELETE FROM task_payloads WHERE seq IN (SELECT seq FROM gone)),
             results AS (DELETE FROM task_results WHERE seq IN (SELECT seq FROM gone)),
             attempts AS (DELETE FROM task_attempts WHERE seq IN (SELECT seq FROM gone)),
             logs AS (DELETE FROM task_logs WHERE seq IN (SELECT seq FROM gone))
           DELETE FROM callbacks WHERE seq IN (SELECT seq FROM gone)`,
    values: [project],
  });
}

/** Deletes those of `digests` no revision uses any more (another project may deploy the same content). */
async function deleteUnusedArchives(db: Queryable, digests: string[]): Promise<void> {
  if (digests.length === 0) return;
  // $1 digests. Locked in one order, so that two deletions sharing archives cannot wait in a circle;
  // the check is the next statement, whose snapshot sees what the lock waited for.
  await db.query({
    text: "SELECT 1 FROM archives WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE",
    values: [digests],
  });
  await db.query({
    text: `DELETE FROM archives a WHERE a.digest = ANY($1::text[])
             AND NOT EXISTS (SELECT 1 FROM revisions r WHERE r.digest = a.digest)`,
    values: [digests],
  });
}
