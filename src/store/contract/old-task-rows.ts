/**
 * Rows of the single `tasks` table that the schemas before the queue tables had (PostgreSQL up to
 * migration 002, SQLite up to 004), in every state, for the tests of the migrations that carry them over.
 */
import type { TaskState } from "../../domain/task.js";
import type { TaskRow } from "../rows.js";
import { lane, project, t0 } from "./contract-fixtures.js";

/** A `tasks` row of the schema before the queue tables (PostgreSQL 2, SQLite 4), with what `TaskRow` lacks. */
export interface OldTaskRow extends TaskRow {
  node_id: string | null;
  charged_attempts: number;
  log: string;
  callback_state: string | null;
  callback_attempts: number;
  callback_next_at: number | null;
  awaited: boolean;
}

const attempt = (number: number, outcome: string, failure?: object) =>
  JSON.stringify({ number, startedAt: t0.getTime() + 10, finishedAt: t0.getTime() + 20, outcome, failure });

let seq = 0;
export function oldTaskRow(state: TaskState, overrides: Partial<OldTaskRow> = {}): OldTaskRow {
  seq += 1;
  const ended = !["queued", "delayed", "running"].includes(state);
  return {
    seq,
    id: `task-${seq}-${state}`,
    project,
    function_name: lane.functionName,
    revision: lane.revision,
    state,
    priority: seq % 3,
    payload: `{"n": ${seq}, "text":"\\u00e9"}`,
    label: seq % 2 === 0 ? "even" : null,
    idempotency_key: `key-${seq}`,
    timeout_s: 60,
    created_at: t0.getTime() + seq,
    run_at: t0.getTime() + seq + (state === "delayed" ? 60_000 : 0),
    started_at: state === "queued" || state === "delayed" ? null : t0.getTime() + 100,
    finished_at: ended ? t0.getTime() + 200 : null,
    start_latency_ms: state === "queued" || state === "delayed" ? null : 100 - seq,
    attempt: state === "queued" || state === "delayed" ? 0 : 1,
    attempt_started_at: state === "running" ? t0.getTime() + 100 : null,
    node_id: state === "queued" || state === "delayed" ? null : "node-old",
    lost_attempts: 0,
    charged_attempts: ended ? 1 : 0,
    attempts: ended ? `[${attempt(1, state === "cancelled" ? "failed" : state)}]` : "[]",
    result: state === "succeeded" ? '{"ok": true}' : null,
    failure: state === "failed" ? '{"kind":"handler_error","message":"no","retryable":true}' : null,
    progress: state === "running" ? '{"percent":50,"message":"half"}' : null,
    log: ended ? `log of ${seq}\n` : "",
    callback_url: null,
    callback_state: null,
    callback_attempts: 0,
    callback_next_at: null,
    awaited: false,
    ...overrides,
  };
}

/**
 * One task in each state (two queued), callbacks pending and delivered, a lost attempt: rows 0 and 1 are
 * queued (1 before 0 by priority), 2 delayed, 3 running on `node-old`, 5 has its callback pending.
 */
export function oldTaskRowsInEveryState(): OldTaskRow[] {
  return [
    oldTaskRow("queued"),
    oldTaskRow("queued", { priority: 2 }),
    oldTaskRow("delayed"),
    oldTaskRow("running"),
    oldTaskRow("succeeded", {
      callback_url: "http://x/ok",
      callback_state: "delivered",
      callback_attempts: 1,
    }),
    oldTaskRow("failed", {
      callback_url: "http://x/failed",
      callback_state: "pending",
      callback_attempts: 2,
      callback_next_at: t0.getTime() + 500,
    }),
    oldTaskRow("timed_out", {
      lost_attempts: 1,
      attempts: `[${attempt(1, "lost")},${attempt(2, "timed_out")}]`,
    }),
    oldTaskRow("out_of_memory"),
    oldTaskRow("cancelled", { attempts: "[]", log: "", charged_attempts: 0, started_at: null }),
  ];
}
