/** The PostgreSQL `TaskReads`: a task, task lists and logs. */
import type { Task } from "../../domain/task.js";
import type { TaskPage, TaskQuery, TaskReads } from "../store.js";
import { decodeCursor, encodeCursor, toTask, type TaskRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { taskColumns, type Queryable } from "./statements.js";

export class PostgresTaskReads implements TaskReads {
  constructor(private readonly connections: PostgresConnections) {}

  async getTask(project: string, id: string): Promise<Task | null> {
    // $1 project, $2 task
    const { rows } = await this.connections.db.query<TaskRow>({
      name: "kiln_get_task",
      text: `SELECT ${taskColumns} FROM task_view WHERE project = $1 AND id = $2`,
      values: [project, id],
    });
    return rows[0] === undefined ? null : toTask(rows[0]);
  }

  async watchTask(project: string, id: string): Promise<Task | null> {
    // $1 project, $2 task. The SELECT reads the row as it was when the statement began: the UPDATE
    // changes only the flag.
    const { rows } = await this.connections.db.query<TaskRow>({
      name: "kiln_watch_task",
      text: `WITH watched AS (UPDATE tasks SET awaited = true WHERE project = $1 AND id = $2 AND NOT awaited)
             SELECT ${taskColumns} FROM task_view WHERE project = $1 AND id = $2`,
      values: [project, id],
    });
    return rows[0] === undefined ? null : toTask(rows[0]);
  }

  async listTasks(query: TaskQuery): Promise<TaskPage> {
    const values: unknown[] = [query.project, query.limit + 1];
    // $1 project, $2 page size + 1 (to learn whether a next page exists), then one per filter
    const conditions = ["project = $1"];
    const filter = (column: string, operator: string, value: unknown) => {
      values.push(value);
      conditions.push(`${column} ${operator} $${values.length}`);
    };
    if (query.functionName !== undefined) filter("function_name", "=", query.functionName);
    if (query.state !== undefined) filter("state", "=", query.state);
    if (query.label !== undefined) filter("label", "=", query.label);
    if (query.cursor !== undefined) filter("seq", "<", decodeCursor(query.cursor));
    const { rows } = await this.connections.db.query<TaskRow>({
      text: `SELECT ${taskColumns} FROM task_view WHERE ${conditions.join(" AND ")} ORDER BY seq DESC LIMIT $2`,
      values,
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      tasks: page.map(toTask),
      nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last.seq) : null,
    };
  }

  async getTaskLog(project: string, id: string): Promise<string | null> {
    const { rows } = await this.connections.db.query<{ log: string }>({
      // $1 project, $2 task: null for an unknown task, '' for one without output
      text: `SELECT coalesce((SELECT string_agg(chunk, '' ORDER BY l.id) FROM task_logs l WHERE l.seq = t.seq), '') AS log
               FROM tasks t WHERE project = $1 AND id = $2`,
      values: [project, id],
    });
    return rows[0]?.log ?? null;
  }
}

/** The task as it is now, or null. */
export async function selectTask(db: Queryable, project: string, id: string): Promise<Task | null> {
  // $1 project, $2 task
  const { rows } = await db.query<TaskRow>({
    name: "kiln_get_task",
    text: `SELECT ${taskColumns} FROM task_view WHERE project = $1 AND id = $2`,
    values: [project, id],
  });
  return rows[0] === undefined ? null : toTask(rows[0]);
}
