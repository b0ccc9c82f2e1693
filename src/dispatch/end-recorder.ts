/**
 * Records attempt ends: those that arrive in one turn of the event loop share one commit, and while
 * the database is unavailable they are kept and retried, so a node that loses its database for a while
 * still reports what its sandboxes did once it is back. Retrying is safe: ends are fenced by attempt.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { StoreUnavailableError, type AttemptEnd, type Store } from "../store/store.js";

interface PendingEnd {
  end: AttemptEnd;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const maxBatch = 500;
const firstRetryMs = 50;
const maxRetryMs = 2000;

export class EndRecorder {
  private pending: PendingEnd[] = [];
  private flushing = false;
  private stopped = false;

  constructor(private readonly store: Store) {}

  /** Resolves once the end is committed. */
  record(end: AttemptEnd): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ end, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Stops retrying: ends not recorded yet fail (their tasks are recovered as `lost`). */
  stop(): void {
    this.stopped = true;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, maxBatch);
      try {
        await this.commit(batch.map(({ end }) => end));
        batch.forEach(({ resolve }) => resolve());
      } catch (error) {
        batch.forEach(({ reject }) => reject(error));
      }
    }
    this.flushing = false;
  }

  private async commit(ends: AttemptEnd[]): Promise<void> {
    for (let delayMs = firstRetryMs; ; delayMs = Math.min(delayMs * 2, maxRetryMs)) {
      try {
        await this.store.finishAttempts(ends);
        return;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || this.stopped) throw error;
        await sleep(delayMs);
      }
    }
  }
}
