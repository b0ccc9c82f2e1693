/** The statements and row helpers the PostgreSQL store shares between its methods. */
import type pg from "pg";
import type { EnqueueResult, FunctionRecord, NewTask, AttemptEnd } from "../store.js";
import {
  newTaskRecord,
  toFunctionRecord,
  toTask,
  type FunctionRow,
  type StoredAttempt,
  type TaskRow,
} from "../rows.js";

/** The database's clock in epoch milliseconds: leases are compared on one clock, not the nodes'. */
export const dbNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/** `query` as both `pg.Pool` and `pg.PoolClient` offer it: a statement outside or inside a transaction. */
export interface Queryable {
  query<Row extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<Row>>;
}

/** The columns of `task_view` a `Task` is read from, for `SELECT` lists (the log is read on its own). */
export const taskColumns = `seq, id, project, function_name, revision, state, priority, payload, label,
  idempotency_key, timeout_s, created_at, run_at, started_at, finished_at, start_latency_ms, attempt,
  attempt_started_at, lost_attempts, attempts, result, failure, progress, callback_url`;

/** The key of a task's lane in the map of lane ids that `insertTasks` takes. */
export function laneKeyOf(task: { project: string; functionName: string; revision: string }): string {
  return `${task.project}\u0000${task.functionName}\u0000${task.revision}`;
}

/**
 * Inserts tasks in one statement: the task, its payload and its place in `ready` or `delayed`. A
 * repeated idempotency key inserts nothing and returns the task holding it. `laneIds` has the id of
 * every task's lane (see `laneKeyOf`).
 *
 * The batch is refused whole (nothing inserted, the refused lane ids returned) when a lane is gone or
 * its project is: the statement holds the project's row (KEY SHARE, the lock a foreign key from
 * `tasks` would take) before it inserts, so a project's deletion, which holds that row FOR UPDATE from
 * its start, either waits for this insert to commit (and then counts its tasks and refuses) or makes
 * it wait, and it then finds the project deleted (READ COMMITTED re-reads the locked row). A lane id is
 * gone when it was cached before its project was deleted.
 */
export async function insertTasks(
  db: Queryable,
  tasks: NewTask[],
  laneIds: ReadonlyMap<string, number>,
): Promise<EnqueueResult[] | { refusedLaneIds: number[] }> {
  // $1..$13 one array element per task, in the order given: ORDER BY position hands out seq in that
  // order, which is the FIFO order of claims. A key repeated in the batch or held by an earlier task
  // (even one another node is inserting now: ON CONFLICT waits for its transaction) inserts nothing.
  // $14 the batch's lane ids, once each. The locks of `live` are taken before any row goes in: the
  // sort for ORDER BY reads all of `n`, through the filter on `refused`, before it hands on a row.
  const { rows } = await db.query<{ seq: number; id: string; refused_lane_id: number | null }>({
    name: "kiln_insert_tasks",
    text: `WITH n AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
                                  $7::text[], $8::text[], $9::int[], $10::bigint[], $11::bigint[], $12::text[],
                                  $13::boolean[])
               WITH ORDINALITY AS n(id, project, lane_id, state, priority, payload, label, idempotency_key,
                                    timeout_s, created_at, run_at, callback_url, awaited, position)),
           live AS (
             SELECT l.id FROM lanes l JOIN projects p ON p.name = l.project
              WHERE l.id = ANY($14::int[]) FOR KEY SHARE OF p),
           refused AS (SELECT unnest($14::int[]) AS lane_id EXCEPT SELECT id FROM live),
           inserted AS (
             INSERT INTO tasks (id, project, lane_id, state, priority, label, idempotency_key, timeout_s,
                                created_at, run_at, callback_url, awaited)
             SELECT id, project, lane_id, state, priority, label, idempotency_key, timeout_s, created_at,
                    run_at, callback_url, awaited
             FROM n WHERE NOT EXISTS (SELECT 1 FROM refused) ORDER BY position
             ON CONFLICT (project, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING seq, id, lane_id, state, priority, run_at),
           payloads AS (
             INSERT INTO task_payloads (seq, payload) SELECT i.seq, n.payload FROM inserted i JOIN n USING (id)),
           queued AS (
             INSERT INTO ready (seq, lane_id, priority)
             SELECT seq, lane_id, priority FROM inserted WHERE state = 'queued'),
           waiting AS (
             INSERT INTO delayed (seq, lane_id, run_at) SELECT seq, lane_id, run_at FROM inserted WHERE state = 'delayed')
           SELECT seq, id, NULL::int AS refused_lane_id FROM inserted
           UNION ALL SELECT NULL, NULL, lane_id FROM refused`,
    values: [
      tasks.map((task) => task.id),
      tasks.map((task) => task.project),
      tasks.map((task) => {
        const id = laneIds.get(laneKeyOf(task));
        if (id === undefined) throw new Error(`no lane id for task ${task.id}`);
        return id;
      }),
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
      [...new Set(laneIds.values())],
    ],
  });
  const refusedLaneIds = rows.flatMap((row) => (row.refused_lane_id === null ? [] : [row.refused_lane_id]));
  if (refusedLaneIds.length > 0) return { refusedLaneIds };
  const created = new Set(rows.map((row) => row.id));
  const skipped = tasks.filter((task) => !created.has(task.id));
  const existing = new Map<string, TaskRow>();
  if (skipped.length > 0) {
    // $1 projects, $2 idempotency keys of the tasks not inserted
    const { rows } = await db.query<TaskRow>({
      text: `SELECT ${taskColumns} FROM task_view
               WHERE (project, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      values: [skipped.map((task) => task.project), skipped.map((task) => task.idempotencyKey)],
    });
    for (const row of rows) existing.set(`${row.project}\u0000${row.idempotency_key}`, row);
  }
  return tasks.map((task): EnqueueResult => {
    if (created.has(task.id)) return { task: newTaskRecord(task), created: true };
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
