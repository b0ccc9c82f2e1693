/**
 * The SQLite `ProjectCatalog`: projects, and the deletion of one with everything it holds. One writer
 * (this process) and group commit: a deletion runs whole inside one write, so no enqueue, claim or
 * retry interleaves with its check and its deletes.
 */
import type { DeleteProjectResult, ProjectCatalog, ProjectContents, ProjectRecord } from "../store.js";
import { toProjectRecord, type ProjectRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import type { SqliteLaneIds } from "./sqlite-lane-ids.js";

export const projectColumns = "name, description, plan, created_at, updated_at";

/**
 * The project's queued, delayed and running tasks, counted where they wait rather than by state: those
 * tables hold only unfinished tasks, so this reads no finished one. @project the project.
 */
const countUnfinishedSql = `SELECT
    (SELECT count(*) FROM ready WHERE lane_id IN (SELECT id FROM lanes WHERE project = @project))
  + (SELECT count(*) FROM delayed WHERE lane_id IN (SELECT id FROM lanes WHERE project = @project))
  + (SELECT count(*) FROM running r JOIN tasks t ON t.seq = r.seq WHERE t.project = @project) AS unfinished`;

/** The tables beside `tasks` whose rows are a task's, by its `seq`. */
const taskSideTables = ["task_payloads", "task_results", "task_attempts", "task_logs", "callbacks"];

export class SqliteProjectCatalog implements ProjectCatalog {
  /** `laneIds` is the task queue's cache of lane ids, told to forget those of a deleted project. */
  constructor(
    private readonly database: SqliteDatabase,
    private readonly laneIds: SqliteLaneIds,
  ) {}

  ensureProject(name: string, now: Date): Promise<void> {
    return this.database.commits.write(() => {
      this.database
        .sql(
          `INSERT INTO projects (name, description, created_at, updated_at) VALUES (?, '', ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(name, now.getTime(), now.getTime());
    }, true);
  }

  hasProject(name: string): Promise<boolean> {
    return Promise.resolve(
      this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(name) !== undefined,
    );
  }

  createProject(name: string, description: string, now: Date): Promise<ProjectRecord | null> {
    return this.database.commits.write(() => {
      const row = this.database
        .sql<[string, string, number, number], ProjectRow>(
          `INSERT INTO projects (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING RETURNING ${projectColumns}`,
        )
        .get(name, description, now.getTime(), now.getTime());
      return row === undefined ? null : toProjectRecord(row);
    }, true);
  }

  callbackSecret(project: string, candidate: string): Promise<string | null> {
    const stored = this.database
      .sql<[string], { callback_secret: string | null }>(
        "SELECT callback_secret FROM projects WHERE name = ?",
      )
      .get(project);
    if (stored === undefined) return Promise.resolve(null);
    if (stored.callback_secret !== null) return Promise.resolve(stored.callback_secret);
    return this.database.commits.write(() => {
      this.database
        .sql("UPDATE projects SET callback_secret = ? WHERE name = ? AND callback_secret IS NULL")
        .run(candidate, project);
      const row = this.database
        .sql<[string], { callback_secret: string | null }>(
          "SELECT callback_secret FROM projects WHERE name = ?",
        )
        .get(project);
      return row?.callback_secret ?? null;
    }, true);
  }

  rotateCallbackSecret(project: string, secret: string, now: Date): Promise<boolean> {
    return this.database.commits.write(
      () =>
        this.database
          .sql("UPDATE projects SET callback_secret = ?, updated_at = ? WHERE name = ?")
          .run(secret, now.getTime(), project).changes === 1,
      true,
    );
  }

  getProject(name: string): Promise<ProjectRecord | null> {
    const row = this.database
      .sql<[string], ProjectRow>(`SELECT ${projectColumns} FROM projects WHERE name = ?`)
      .get(name);
    return Promise.resolve(row === undefined ? null : toProjectRecord(row));
  }

  listProjects(): Promise<ProjectRecord[]> {
    const rows = this.database
      .sql<[], ProjectRow>(`SELECT ${projectColumns} FROM projects ORDER BY name`)
      .all();
    return Promise.resolve(rows.map(toProjectRecord));
  }

  updateProject(name: string, change: { description?: string }, now: Date): Promise<ProjectRecord | null> {
    return this.database.commits.write(() => {
      const row = this.database
        .sql<[string | null, number, string], ProjectRow>(
          `UPDATE projects SET description = coalesce(?, description), updated_at = ? WHERE name = ?
           RETURNING ${projectColumns}`,
        )
        .get(change.description ?? null, now.getTime(), name);
      return row === undefined ? null : toProjectRecord(row);
    }, true);
  }

  countProjectContents(name: string): Promise<ProjectContents> {
    const row = this.database
      .sql<[{ project: string }], { functions: number; unfinished: number }>(
        `SELECT (SELECT count(*) FROM functions WHERE project = @project) AS functions,
                (${countUnfinishedSql}) AS unfinished`,
      )
      .get({ project: name });
    return Promise.resolve({ functions: row?.functions ?? 0, unfinishedTasks: row?.unfinished ?? 0 });
  }

  deleteProject(name: string): Promise<DeleteProjectResult> {
    return this.database.commits.write((): DeleteProjectResult => {
      const project = { project: name };
      if (this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(name) === undefined)
        return { deleted: false, reason: "not_found" };
      const unfinished =
        this.database.sql<[typeof project], { unfinished: number }>(countUnfinishedSql).get(project)
          ?.unfinished ?? 0;
      if (unfinished > 0) return { deleted: false, reason: "unfinished_tasks", unfinishedTasks: unfinished };
      // None of its tasks is in `ready`, `delayed` or `running` (counted just now): what is left of
      // them is `tasks` and the side tables.
      for (const table of taskSideTables)
        this.database
          .sql(`DELETE FROM ${table} WHERE seq IN (SELECT seq FROM tasks WHERE project = @project)`)
          .run(project);
      this.database.sql("DELETE FROM tasks WHERE project = @project").run(project);
      const digests = this.database
        .sql<[typeof project], { digest: string }>(
          "DELETE FROM revisions WHERE project = @project RETURNING digest",
        )
        .all(project)
        .map((row) => row.digest);
      this.database.sql("DELETE FROM functions WHERE project = @project").run(project);
      this.database.sql("DELETE FROM lanes WHERE project = @project").run(project);
      this.database.sql("DELETE FROM function_slots WHERE project = @project").run(project);
      this.database.sql("DELETE FROM tokens WHERE project = @project").run(project);
      // Another project may deploy the same content: its revisions share the archive, which stays.
      this.database
        .sql(
          `DELETE FROM archives WHERE digest IN (SELECT value FROM json_each(?))
             AND NOT EXISTS (SELECT 1 FROM revisions r WHERE r.digest = archives.digest)`,
        )
        .run(JSON.stringify(digests));
      this.database.sql("DELETE FROM projects WHERE name = @project").run(project);
      this.laneIds.forgetProject(name);
      return { deleted: true };
    }, true);
  }
}
