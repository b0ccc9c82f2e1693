/** The SQLite `TaskReads`: a task, task lists and logs. */
import type { Task } from "../../domain/task.js";
import type { TaskPage, TaskQuery, TaskReads } from "../store.js";
import { decodeCursor, encodeCursor, toTask, type TaskRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export class SqliteTaskReads implements TaskReads {
  constructor(private readonly database: SqliteDatabase) {}

  getTask(project: string, id: string): Promise<Task | null> {
    return Promise.resolve(selectTask(this.database, project, id));
  }

  /** One node: its own waiters hear everything already. */
  watchTask(project: string, id: string): Promise<Task | null> {
    return this.getTask(project, id);
  }

  listTasks(query: TaskQuery): Promise<TaskPage> {
    const conditions = ["project = @project"];
    if (query.functionName !== undefined) conditions.push("function_name = @functionName");
    if (query.state !== undefined) conditions.push("state = @state");
    if (query.label !== undefined) conditions.push("label = @label");
    const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (before !== undefined) conditions.push("seq < @before");
    const rows = this.database
      .sql<unknown[], TaskRow>(
        `SELECT * FROM task_view WHERE ${conditions.join(" AND ")} ORDER BY seq DESC LIMIT @limit`,
      )
      .all({ ...query, before, limit: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return Promise.resolve({
      tasks: page.map(toTask),
      nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last.seq) : null,
    });
  }

  getTaskLog(project: string, id: string): Promise<string | null> {
    const row = this.database
      .sql<[string, string], { log: string }>(
        `SELECT coalesce((SELECT group_concat(chunk, '' ORDER BY l.id) FROM task_logs l WHERE l.seq = t.seq), '') AS log
         FROM tasks t WHERE project = ? AND id = ?`,
      )
      .get(project, id);
    return Promise.resolve(row?.log ?? null);
  }
}

/** The task as it is now, or null. */
export function selectTask(database: SqliteDatabase, project: string, id: string): Task | null {
  const row = database
    .sql<[string, string], TaskRow>("SELECT * FROM task_view WHERE project = ? AND id = ?")
    .get(project, id);
  return row === undefined ? null : toTask(row);
}
