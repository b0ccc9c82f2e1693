/**
 * Callbacks: when a task with a callback URL ends, its outcome is POSTed there, signed so the receiver
 * can tell it came from this Kiln, and retried with exponential backoff while the receiver is down.
 * The store holds what is due, so a restart loses no delivery (at-least-once, like tasks).
 */
import { createHmac } from "node:crypto";
import type { Task } from "../domain/task.js";
import type { Store } from "../store/store.js";
import { DelayTimer } from "./delay-timer.js";

export interface CallbackSenderOptions {
  store: Store;
  /** The HMAC-SHA256 key of the `Kiln-Signature` header. */
  secret: string;
  /** Delay before the first retry; it doubles each retry, up to a minute. */
  retryBaseMs: number;
  /** Deliveries tried before the callback is given up (marked `failed`). */
  maxAttempts: number;
}

const requestTimeoutMs = 10_000;
const maxRetryDelayMs = 60_000;
const batchSize = 32;
/** A claimed callback is due again after this if its delivery never reports back (its node died). */
const deliveryLeaseMs = 3 * requestTimeoutMs;
// Task ends are coalesced: under load, one look for due callbacks per window, not one per task.
const coalesceMs = 10;

/** `t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as the receiver recomputes it. */
export function signCallback(secret: string, timestampMs: number, body: string): string {
  const digest = createHmac("sha256", secret).update(`${timestampMs}.${body}`).digest("hex");
  return `t=${timestampMs},v1=${digest}`;
}

export class CallbackSender {
  private readonly timer: DelayTimer;
  private scheduled = false;
  private running = false;
  private stopped = false;

  constructor(private readonly options: CallbackSenderOptions) {
    this.timer = new DelayTimer(() => this.wake());
  }

  /** A task with a callback may have ended, or a retry may be due: deliver what is due soon. */
  wake(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      void this.deliverDue();
    }, coalesceMs).unref();
  }

  stop(): void {
    this.stopped = true;
    this.timer.stop();
  }

  private async deliverDue(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      for (;;) {
        const due = await this.options.store.claimDueCallbacks(new Date(), batchSize, deliveryLeaseMs);
        await Promise.all(due.map(({ task, url, attempts }) => this.deliver(task, url, attempts)));
        if (due.length < batchSize || this.stopped) break;
      }
      const next = await this.options.store.nextCallbackAt();
      if (next !== null && !this.stopped) this.timer.arm(next);
    } catch (error) {
      console.error("kiln: delivering callbacks failed", error);
    } finally {
      this.running = false;
    }
  }

  private async deliver(task: Task, url: string, attempts: number): Promise<void> {
    const body = JSON.stringify(describeOutcome(task));
    let delivered = false;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "kiln-task-id": task.id,
          "kiln-signature": signCallback(this.options.secret, Date.now(), body),
        },
        body,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      delivered = response.ok;
    } catch {
      delivered = false; // unreachable, refused or too slow: retried like a 5xx
    }
    const tried = attempts + 1;
    const retryAt =
      delivered || tried >= this.options.maxAttempts
        ? null
        : new Date(Date.now() + Math.min(this.options.retryBaseMs * 2 ** (tried - 1), maxRetryDelayMs));
    await this.options.store.recordCallbackAttempt(task.id, { delivered, retryAt });
  }
}

/** What a callback receiver gets: the task's outcome, without its payload or log. */
function describeOutcome(task: Task) {
  return {
    id: task.id,
    project: task.project,
    function: task.functionName,
    state: task.state,
    result: task.result,
    failure: task.failure,
    attempts: task.attempts.length,
    createdAt: task.createdAt.toISOString(),
    startedAt: task.startedAt?.toISOString() ?? null,
    finishedAt: task.finishedAt?.toISOString() ?? null,
  };
}
