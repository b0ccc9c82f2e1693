/** The `CallbackOutbox` port: outcomes of ended tasks waiting to be POSTed to their callback URLs. */
import type { Task } from "../domain/task.js";

/** A task's outcome waiting to be POSTed to its callback URL. */
export interface DueCallback {
  task: Task;
  url: string;
  /** Deliveries tried so far. */
  attempts: number;
}

export interface CallbackOutbox {
  /**
   * Takes the outcomes whose callback is due at `now` (oldest first, at most `limit`) for one delivery:
   * they are not due again, for this node or another, before `now + leaseMs`.
   */
  claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]>;
  /** The earliest time a pending callback is due, for the sender's timer. */
  nextCallbackAt(): Promise<Date | null>;
  /** Records a delivery: `delivered`, or tried again at `retryAt`, or `failed` for good (retryAt null). */
  recordCallbackAttempt(taskId: string, outcome: { delivered: boolean; retryAt: Date | null }): Promise<void>;
}
