/** The statements and row helpers the PostgreSQL store shares between its methods. */
import type pg from "pg";
import type { EnqueueResult, FunctionRecord, NewTask, AttemptEnd } from "../store.js";
import { toFunctionRecord, toTask, type FunctionRow, type StoredAttempt, type TaskRow } from "../rows.js";

/** `query` as both `pg.Pool` and `pg.PoolClient` offer it: a statement outside or inside a transaction. */
export interface Queryable {
  query<Row extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<Row>>;
}

/** The columns a `Task` is read from, for `SELECT` and `RETURNING` lists (the log is read on its own). */
export const taskColumns = `seq, id, project, function_name, revision, state, priority, payload, label,
  idempotency_key, timeout_s, created_at, run_at, started_at, finished_at, start_latency_ms, attempt,
  attempt_started_at, lost_attempts, attempts, result, failure, progress, callback_url, callback_attempts`;

/** Inserts tasks in one statement; a repeated idempotency key inserts nothing and returns the task holding it. */
export async function insertTasks(db: Queryable, tasks: NewTask[]): Promise<EnqueueResult[]> {
  // $1..$14 one array element per task, in the order given: ORDER BY position hands out seq in that
  // order, which is the FIFO order of claims. A key repeated in the batch or held by an earlier task
  // (even one another node is inserting now: ON CONFLICT waits for its transaction) inserts nothing.
  const { rows: inserted } = await db.query<TaskRow>({
    name: "kiln_insert_tasks",
    text: `INSERT INTO tasks (id, project, function_name, revision, state, priority, payload, label,
                              idempotency_key, timeout_s, created_at, run_at, callback_url, awaited)
           SELECT id, project, function_name, revision, state, priority, payload, label,
                  idempotency_key, timeout_s, created_at, run_at, callback_url, awaited
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[],
                       $8::text[], $9::text[], $10::int[], $11::bigint[], $12::bigint[], $13::text[], $14::boolean[])
                  WITH ORDINALITY AS n(id, project, function_name, revision, state, priority, payload, label,
                                       idempotency_key, timeout_s, created_at, run_at, callback_url, awaited,
                                       position)
           ORDER BY position
           ON CONFLICT (project, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING ${taskColumns}`,
    values: [
      tasks.map((task) => task.id),
      tasks.map((task) => task.project),
      tasks.map((task) => task.functionName),
      tasks.map((task) => task.revision),
      tasks.map((task) => (task.runAt > task.createdAt ? "delayed" : "queued")),
      tasks.map((task) => task.priority),
      tasks.map((task) => task.payload),
      tasks.map((task) => task.label),
      tasks.map((task) => task.idempotencyKey),
      tasks.map((task) => task.timeoutS),
      tasks.map((task) => task.createdAt.getTime()),
      tasks.map((task) => task.runAt.getTime()),
      tasks.map((task) => task.callbackUrl),
      tasks.map((task) => task.awaited ?? false),
    ],
  });
  const created = new Map(inserted.map((row) => [row.id, row]));
  const skipped = tasks.filter((task) => !created.has(task.id));
  const existing = new Map<string, TaskRow>();
  if (skipped.length > 0) {
    // $1 projects, $2 idempotency keys of the tasks not inserted
    const { rows } = await db.query<TaskRow>({
      text: `SELECT ${taskColumns} FROM tasks
               WHERE (project, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      values: [skipped.map((task) => task.project), skipped.map((task) => task.idempotencyKey)],
    });
    for (const row of rows) existing.set(`${row.project}\u0000${row.idempotency_key}`, row);
  }
  return tasks.map((task): EnqueueResult => {
    const row = created.get(task.id);
    if (row !== undefined) return { task: toTask(row), created: true };
    const held = existing.get(`${task.project}\u0000${task.idempotencyKey}`);
    if (held === undefined) throw new Error(`task ${task.id} was neither inserted nor found`);
    return { task: toTask(held), created: false };
  });
}

export function selectFunction(db: Queryable, project: string, name: string): Promise<FunctionRecord | null> {
  // $1 project, $2 function
  return db
    .query<FunctionRow>({
      text: `${selectFunctionSql} WHERE f.project = $1 AND f.name = $2`,
      values: [project, name],
    })
    .then(({ rows }) => (rows[0] === undefined ? null : toFunctionRecord(rows[0])));
}

const functionColumns =
  "f.project, f.name, f.current_revision, f.settings, r.spec, f.created_at, f.updated_at";
const currentRevisionJoin =
  "JOIN revisions r ON r.project = f.project AND r.function_name = f.name AND r.digest = f.current_revision";

/** Functions with their current revision's spec. */
export const selectFunctionSql = `SELECT ${functionColumns} FROM functions f ${currentRevisionJoin}`;

/** Appends one attempt (JSON text) to a JSON array kept as text, as SQLite's json_insert(…, '$[#]', …) does. */
export function appendAttemptSql(array: string, attempt: string): string {
  return `CASE WHEN ${array} = '[]' THEN '[' || ${attempt} || ']'
               ELSE left(${array}, -1) || ',' || ${attempt} || ']' END`;
}

export function toStoredAttempt(end: AttemptEnd): StoredAttempt {
  return {
    number: end.attempt,
    startedAt: end.startedAt.getTime(),
    finishedAt: end.finishedAt.getTime(),
    outcome: end.outcome,
    ...(end.failure === null ? {} : { failure: end.failure }),
  };
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
