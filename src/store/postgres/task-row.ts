/** Mapping between a `tasks` row and the domain `Task` (the same columns as the SQLite adapter's). */
import type { Attempt, Failure, Priority, Progress, Task, TaskState } from "../../domain/task.js";

/** The columns a `Task` is read from, for `SELECT` and `RETURNING` lists (the log is read on its own). */
export const taskColumns = `seq, id, project, function_name, revision, state, priority, payload, label,
  idempotency_key, timeout_s, created_at, run_at, started_at, finished_at, start_latency_ms, attempt,
  attempt_started_at, lost_attempts, attempts, result, failure, progress, callback_url, callback_attempts`;

/** A row of `taskColumns`; bigint columns arrive as numbers (see the pool's type parsers). */
export interface TaskRow {
  seq: number;
  id: string;
  project: string;
  function_name: string;
  revision: string;
  state: TaskState;
  priority: number;
  payload: string;
  label: string | null;
  idempotency_key: string | null;
  timeout_s: number;
  created_at: number;
  run_at: number;
  started_at: number | null;
  finished_at: number | null;
  start_latency_ms: number | null;
  attempt: number;
  attempt_started_at: number | null;
  lost_attempts: number;
  attempts: string;
  result: string | null;
  failure: string | null;
  progress: string | null;
  callback_url: string | null;
  callback_attempts: number;
}

/** Attempts as stored in the `attempts` JSON array: times in epoch milliseconds. */
export interface StoredAttempt {
  number: number;
  startedAt: number;
  finishedAt: number;
  outcome: Attempt["outcome"];
  failure?: Failure;
}

const toDate = (ms: number | null) => (ms === null ? null : new Date(ms));

export function toTask(row: TaskRow): Task {
  const attempts = (JSON.parse(row.attempts) as StoredAttempt[]).map((attempt) => ({
    ...attempt,
    startedAt: new Date(attempt.startedAt),
    finishedAt: new Date(attempt.finishedAt),
  }));
  return {
    id: row.id,
    project: row.project,
    functionName: row.function_name,
    revision: row.revision,
    state: row.state,
    priority: row.priority as Priority,
    payload: JSON.parse(row.payload) as unknown,
    label: row.label,
    idempotencyKey: row.idempotency_key,
    timeoutS: row.timeout_s,
    createdAt: new Date(row.created_at),
    runAt: new Date(row.run_at),
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    startLatencyMs: row.start_latency_ms,
    attempts,
    lostAttempts: row.lost_attempts,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    failure: row.failure === null ? null : (JSON.parse(row.failure) as Failure),
    progress: row.progress === null ? null : (JSON.parse(row.progress) as Progress),
  };
}
