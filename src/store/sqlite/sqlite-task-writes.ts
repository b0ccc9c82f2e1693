/**
 * Writes of the SQLite task queue kept out of its steps: appending an attempt and its log, setting a
 * result, queueing a callback, the recovery of lost attempts that uses them, and the hand-back of
 * attempts a graceful stop gives up.
 */
import type { Failure } from "../../domain/task.js";
import { logTruncatedMarker, type StoredAttempt } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export function appendAttempt(database: SqliteDatabase, seq: number, attempt: StoredAttempt): void {
  database.sql("INSERT INTO task_attempts (seq, attempt) VALUES (?, ?)").run(seq, JSON.stringify(attempt));
}

/** Appends an attempt's log, cut at the log limit once with a marker at the cut; returns what it added. */
export function appendLog(database: SqliteDatabase, seq: number, log: string): number {
  if (log === "") return 0;
  const logged = database
    .sql<unknown[], { chars: number }>(
      `INSERT INTO task_logs (seq, chunk)
       SELECT seq, chunk FROM (
         SELECT seq, CASE WHEN log_chars > @max THEN ''
                          WHEN log_chars + length(@log) > @max THEN substr(@log, 1, @max - log_chars) || @marker
                          ELSE @log END AS chunk
         FROM tasks WHERE seq = @seq)
       WHERE chunk <> ''
       RETURNING length(chunk) AS chars`,
    )
    .get({ seq, log, max: database.maxLogChars, marker: logTruncatedMarker });
  return logged?.chars ?? 0;
}

/** The task's latest result and failure (an attempt's end, or a recovery that gives up). */
export function setResult(
  database: SqliteDatabase,
  seq: number,
  result: string | null,
  failure: string | null,
): void {
  database
    .sql(
      `INSERT INTO task_results (seq, result, failure) VALUES (?, ?, ?)
         ON CONFLICT (seq) DO UPDATE SET result = excluded.result, failure = excluded.failure`,
    )
    .run(seq, result, failure);
}

/** The task's outcome is to be POSTed to `url` from `dueAt` on. */
export function queueCallback(database: SqliteDatabase, seq: number, url: string, dueAt: number): void {
  database
    .sql(
      `INSERT INTO callbacks (seq, url, state, attempts, next_at) VALUES (?, ?, 'pending', 0, ?)
         ON CONFLICT (seq) DO UPDATE SET state = 'pending', attempts = 0, next_at = excluded.next_at`,
    )
    .run(seq, url, dueAt);
}

/**
 * Ends every running attempt as `lost` (one node: all of them are this node's, left by its previous
 * life): the task is queued again, or failed once lost `maxLostAttempts` times. Runs inside a write.
 */
export function recoverRunningTasks(database: SqliteDatabase, now: Date, maxLostAttempts: number): number {
  const running = database
    .sql<
      [],
      {
        seq: number;
        attempt: number;
        claimed_at: number;
        slot_id: number;
        lost_attempts: number;
        lane_id: number;
        priority: number;
        callback_url: string | null;
      }
    >(
      `SELECT r.seq, r.attempt, r.claimed_at, r.slot_id, t.lost_attempts, t.lane_id, t.priority, t.callback_url
           FROM running r JOIN tasks t ON t.seq = r.seq ORDER BY r.seq`,
    )
    .all();
  const failure: Failure = {
    kind: "lost",
    message: "the node running this attempt stopped before it finished",
    retryable: true,
  };
  for (const task of running) {
    const exhausted = task.lost_attempts + 1 >= maxLostAttempts;
    database.sql("DELETE FROM running WHERE seq = ?").run(task.seq);
    database.sql("UPDATE function_slots SET running = running - 1 WHERE id = ?").run(task.slot_id);
    appendAttempt(database, task.seq, {
      number: task.attempt,
      startedAt: task.claimed_at,
      finishedAt: now.getTime(),
      outcome: "lost",
      failure,
    });
    database
      .sql(
        `UPDATE tasks SET state = ?, finished_at = ?, attempt_started_at = NULL, lost_attempts = lost_attempts + 1
             WHERE seq = ?`,
      )
      .run(exhausted ? "failed" : "queued", exhausted ? now.getTime() : null, task.seq);
    if (!exhausted) {
      database
        .sql("INSERT INTO ready (seq, lane_id, priority) VALUES (?, ?, ?)")
        .run(task.seq, task.lane_id, task.priority);
      continue;
    }
    const message = `lost ${maxLostAttempts} times; not run again`;
    setResult(database, task.seq, null, JSON.stringify({ ...failure, message, retryable: false }));
    if (task.callback_url !== null) queueCallback(database, task.seq, task.callback_url, now.getTime());
  }
  return running.length;
}

/**
 * Queues again the attempts a stopping node gives up, as if they had never started: the `running` row
 * and the function's slot are given back as an end gives them back, the task goes back to `ready` with
 * its attempt number one lower, and no attempt, charge or loss is recorded. Fenced like an end: only an
 * attempt `running` still holds. Runs inside a write; returns how many were handed back.
 */
export function handBackRunningTasks(
  database: SqliteDatabase,
  attempts: { taskId: string; attempt: number }[],
): number {
  let handedBack = 0;
  for (const { taskId, attempt } of attempts) {
    const stopped = database
      .sql<[string, number], { seq: number; slot_id: number }>(
        `DELETE FROM running WHERE seq = (SELECT seq FROM tasks WHERE id = ?) AND attempt = ?
         RETURNING seq, slot_id`,
      )
      .get(taskId, attempt);
    if (stopped === undefined) continue;
    database.sql("UPDATE function_slots SET running = running - 1 WHERE id = ?").run(stopped.slot_id);
    // A first attempt handed back leaves the task never started; a later one keeps the first's start.
    const task = database
      .sql<[number], { lane_id: number; priority: number }>(
        `UPDATE tasks
         SET state = 'queued', attempt = attempt - 1, attempt_started_at = NULL, progress = NULL,
             started_at = CASE WHEN attempt = 1 THEN NULL ELSE started_at END,
             start_latency_ms = CASE WHEN attempt = 1 THEN NULL ELSE start_latency_ms END
         WHERE seq = ?
         RETURNING lane_id, priority`,
      )
      .get(stopped.seq);
    database
      .sql("INSERT INTO ready (seq, lane_id, priority) VALUES (?, ?, ?)")
      .run(stopped.seq, task?.lane_id, task?.priority);
    handedBack++;
  }
  return handedBack;
}
