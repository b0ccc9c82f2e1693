/** The SQLite `CallbackOutbox`: outcomes waiting to be POSTed to their callback URLs. */
import type { CallbackOutbox, DueCallback } from "../store.js";
import { toTask, type TaskRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export class SqliteCallbackOutbox implements CallbackOutbox {
  constructor(private readonly database: SqliteDatabase) {}

  claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]> {
    return this.database.commits.write(() => {
      const taken = this.database
        .sql<[number, number, number], { seq: number; url: string; attempts: number }>(
          `UPDATE callbacks SET next_at = ?
           WHERE seq IN (SELECT seq FROM callbacks WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?)
           RETURNING seq, url, attempts`,
        )
        .all(now.getTime() + leaseMs, now.getTime(), limit);
      taken.sort((a, b) => a.seq - b.seq);
      const selectTask = this.database.sql<[number], TaskRow>("SELECT * FROM task_view WHERE seq = ?");
      return taken.flatMap(({ seq, url, attempts }) => {
        const row = selectTask.get(seq);
        return row === undefined ? [] : [{ task: toTask(row), url, attempts }];
      });
    }, false);
  }

  nextCallbackAt(): Promise<Date | null> {
    const row = this.database
      .sql<[], { next: number | null }>("SELECT min(next_at) AS next FROM callbacks WHERE state = 'pending'")
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
          `UPDATE callbacks SET state = ?, attempts = attempts + 1, next_at = ?
           WHERE seq = (SELECT seq FROM tasks WHERE id = ?) AND state = 'pending'`,
        )
        .run(state, outcome.retryAt?.getTime() ?? null, taskId);
    }, false);
  }
}
