/** The SQLite `CallbackOutbox`: outcomes waiting to be POSTed to their callback URLs. */
import type { CallbackOutbox, DueCallback } from "../store.js";
import { toTask, type TaskRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export class SqliteCallbackOutbox implements CallbackOutbox {
  constructor(private readonly database: SqliteDatabase) {}

  claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]> {
    return this.database.commits.write(() => {
      const rows = this.database
        .sql<[number, number, number], TaskRow & { callback_url: string; callback_attempts: number }>(
          `UPDATE tasks SET callback_next_at = ?
         WHERE seq IN (SELECT seq FROM tasks WHERE callback_state = 'pending' AND callback_next_at <= ?
                       ORDER BY callback_next_at LIMIT ?)
         RETURNING *`,
        )
        .all(now.getTime() + leaseMs, now.getTime(), limit);
      rows.sort((a, b) => a.seq - b.seq);
      return rows.map((row) => ({
        task: toTask(row),
        url: row.callback_url,
        attempts: row.callback_attempts,
      }));
    }, false);
  }

  nextCallbackAt(): Promise<Date | null> {
    const row = this.database
      .sql<[], { next: number | null }>(
        "SELECT min(callback_next_at) AS next FROM tasks WHERE callback_state = 'pending'",
      )
      .get();
    return Promise.resolve(row?.next == null ? null : new Date(row.next));
  }

  recordCallbackAttempt(
    taskId: string,
    outcome: { delivered: boolean; retryAt: Date | null },
  ): Promise<void> {
    const state = outcome.delivered ? "delivered" : outcome.retryAt === null ? "failed" : "pending";
    return this.database.commits.write(() => {
      this.database
        .sql(
          `UPDATE tasks SET callback_state = ?, callback_attempts = callback_attempts + 1, callback_next_at = ?
         WHERE id = ? AND callback_state = 'pending'`,
        )
        .run(state, outcome.retryAt?.getTime() ?? null, taskId);
    }, false);
  }
}
