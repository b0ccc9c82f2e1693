/**
 * Records attempt ends: those that arrive in one turn of the event loop share one commit, and while
 * the database is unavailable they are kept and retried, so a node that loses its database for a while
 * still reports what its sandboxes did once it is back. Retrying is safe: ends are fenced by attempt.
 *
 * An end the store refuses for another reason (a constraint, a full disk, a bug) is tried again a few
 * times, then alone (so one bad end cannot hold back its neighbours), and finally recorded as a
 * `crashed` failure carrying the reason: a task never stays `running`, holding a concurrency slot of
 * its function, because its outcome could not be written.
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
/** Tries of an end the store refuses for a reason other than being unavailable (~350 ms in all). */
const refusedTries = 4;

export class EndRecorder {
  private pending: PendingEnd[] = [];
  private flushing = false;
  private stopped = false;

  /**
   * `lingerMs`: under load (ends arrived while the previous batch was being committed), a batch smaller
   * than `maxBatch / 8` waits this long for more, so that a store whose statement costs much more than
   * a row (PostgreSQL) records ends in batches of dozens, not of the few a round trip gathers. The first
   * end after a quiet spell goes at once.
   */
  constructor(
    private readonly store: Pick<Store, "finishAttempts">,
    private readonly lingerMs = 0,
  ) {}

  /** Resolves once the end, or the `crashed` failure standing in for it, is committed. */
  record(end: AttemptEnd): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ end, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Stops retrying: ends not recorded yet fail (their tasks are handed back or recovered as `lost`). */
  stop(): void {
    this.stopped = true;
  }

  private async flush(): Promise<void> {
    for (let busy = false; this.pending.length > 0; busy = true) {
      if (busy && this.lingerMs > 0 && this.pending.length < maxBatch / 8) await sleep(this.lingerMs);
      const batch = this.pending.splice(0, maxBatch);
      try {
        await this.commit(batch.map(({ end }) => end));
        batch.forEach(({ resolve }) => resolve());
      } catch (error) {
        if (error instanceof StoreUnavailableError || this.stopped) {
          batch.forEach(({ reject }) => reject(error));
        } else {
          await Promise.all(batch.map((pending) => this.recordAlone(pending)));
        }
      }
    }
    this.flushing = false;
  }

  /** One end the store refused in a batch: tried alone, then replaced by a `crashed` failure. */
  private async recordAlone({ end, resolve, reject }: PendingEnd): Promise<void> {
    try {
      await this.commit([end]);
      resolve();
      return;
    } catch (error) {
      if (error instanceof StoreUnavailableError || this.stopped) {
        reject(error);
        return;
      }
      try {
        await this.commit([crashedEnd(end, error)]);
        resolve();
      } catch (fallbackError) {
        reject(fallbackError);
      }
    }
  }

  private async commit(ends: AttemptEnd[]): Promise<void> {
    let refusals = 0;
    for (let delayMs = firstRetryMs; ; delayMs = Math.min(delayMs * 2, maxRetryMs)) {
      try {
        await this.store.finishAttempts(ends);
        return;
      } catch (error) {
        if (this.stopped) throw error;
        if (!(error instanceof StoreUnavailableError) && ++refusals >= refusedTries) throw error;
        await sleep(delayMs);
      }
    }
  }
}

/**
 * What is recorded when an attempt's end cannot be: the attempt `crashed` with the store's reason, and
 * the task `failed` (not retried: an end refused once for its content would be refused again).
 */
function crashedEnd(end: AttemptEnd, error: unknown): AttemptEnd {
  const reason = error instanceof Error ? error.message : String(error);
  return {
    ...end,
    outcome: "crashed",
    failure: {
      kind: "crashed",
      message: `the outcome of this attempt (${end.outcome}) could not be recorded: ${reason.slice(0, 500)}`,
      retryable: false,
    },
    result: null,
    log: "",
    next: { state: "failed" },
  };
}
