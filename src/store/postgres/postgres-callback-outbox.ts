/** The PostgreSQL `CallbackOutbox`: outcomes waiting to be POSTed, handed to one node at a time. */
import type { CallbackOutbox, DueCallback } from "../store.js";
import { toTask, type TaskRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { taskColumns } from "./statements.js";

export class PostgresCallbackOutbox implements CallbackOutbox {
  constructor(private readonly connections: PostgresConnections) {}

  async claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]> {
    // $1 now, $2 limit, $3 when the callback is due again if this delivery never reports back.
    // SKIP LOCKED: nodes claiming at once take different callbacks.
    const { rows } = await this.connections.db.query<TaskRow & { url: string; callback_attempts: number }>({
      text: `WITH taken AS (
               UPDATE callbacks SET next_at = $3
               WHERE seq IN (SELECT seq FROM callbacks WHERE state = 'pending' AND next_at <= $1
                             ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING seq, url, attempts AS delivery_attempts)
             SELECT ${taskColumns}, taken.url, taken.delivery_attempts AS callback_attempts
             FROM taken JOIN task_view USING (seq)`,
      values: [now.getTime(), limit, now.getTime() + leaseMs],
    });
    rows.sort((a, b) => a.seq - b.seq);
    return rows.map((row) => ({ task: toTask(row), url: row.url, attempts: row.callback_attempts }));
  }

  async nextCallbackAt(): Promise<Date | null> {
    const { rows } = await this.connections.db.query<{ next: number | null }>({
      text: "SELECT min(next_at) AS next FROM callbacks WHERE state = 'pending'",
    });
    return rows[0]?.next == null ? null : new Date(rows[0].next);
  }

  async recordCallbackAttempt(
    taskId: string,
    outcome: { delivered: boolean; retryAt: Date | null },
  ): Promise<void> {
    const state = outcome.delivered ? "delivered" : outcome.retryAt === null ? "failed" : "pending";
    // $1 new callback state, $2 next try (epoch ms) or null, $3 task
    await this.connections.db.query({
      text: `UPDATE callbacks SET state = $1, attempts = attempts + 1, next_at = $2
               WHERE seq = (SELECT seq FROM tasks WHERE id = $3) AND state = 'pending'`,
      values: [state, outcome.retryAt?.getTime() ?? null, taskId],
    });
  }
}
