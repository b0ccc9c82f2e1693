/**
 * Callbacks: when a task with a callback URL ends, its outcome is POSTed there, signed so the receiver
 * can tell it came from this Kiln, and retried with exponential backoff while the receiver is down.
 * The store holds what is due, so a restart loses no delivery (at-least-once, like tasks).
 */
import { createHmac, randomBytes } from "node:crypto";
import { lookup as lookupDns, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { Task } from "../domain/task.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/store.js";
import { refusedCallbackAddress, refusedCallbackUrl } from "./callback-address.js";
import { DelayTimer } from "./delay-timer.js";

export interface CallbackSenderOptions {
  store: Store;
  /** Delay before the first retry; it doubles each retry, up to a minute. */
  retryBaseMs: number;
  /** Deliveries tried before the callback is given up (marked `failed`). */
  maxAttempts: number;
  /** Deliver to loopback, private and link-local addresses too (off: a receiver must be public). */
  allowPrivateAddresses: boolean;
  logger: Logger;
}

const requestTimeoutMs = 10_000;
const maxRetryDelayMs = 60_000;
const batchSize = 32;
/** A claimed callback is due again after this if its delivery never reports back (its node died). */
const deliveryLeaseMs = 3 * requestTimeoutMs;
// Task ends are coalesced: under load, one look for due callbacks per window, not one per task.
const coalesceMs = 10;
/** A project's key is read again after this: a rotation through any node reaches every node by then. */
const secretTtlMs = 5_000;

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
  private readonly secrets = new Map<string, { secret: Promise<string | null>; readAtMs: number }>();

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
      this.options.logger.error({ err: error }, "delivering callbacks failed");
    } finally {
      this.running = false;
    }
  }

  /** The HMAC-SHA256 key of the project's `Kiln-Signature` headers (made at its first callback). */
  private secretOf(project: string): Promise<string | null> {
    const cached = this.secrets.get(project);
    if (cached !== undefined && Date.now() - cached.readAtMs < secretTtlMs) return cached.secret;
    const secret = this.options.store.callbackSecret(project, randomBytes(32).toString("base64url"));
    this.secrets.set(project, { secret, readAtMs: Date.now() });
    secret.catch(() => this.secrets.delete(project));
    return secret;
  }

  private async deliver(task: Task, url: string, attempts: number): Promise<void> {
    const body = JSON.stringify(describeOutcome(task));
    const secret = await this.secretOf(task.project);
    // A project deleted meanwhile takes its callbacks with it.
    if (secret === null) return;
    const delivered = await postCallback(
      url,
      this.options.allowPrivateAddresses,
      {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body)),
        "kiln-task-id": task.id,
        "kiln-signature": signCallback(secret, Date.now(), body),
      },
      body,
    ).catch((error: unknown) => {
      // Unreachable, refused, too slow or a forbidden address: retried like a 5xx.
      this.options.logger.debug({ err: error, taskId: task.id }, "callback delivery failed");
      return false;
    });
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

/**
 * One POST; true when the receiver answered 2xx. A redirect is not followed (a 3xx is a failed
 * delivery), the answer's body is never read, and the whole exchange has a deadline. The connection
 * goes to the very address that was checked, so a name cannot resolve to a public address for the
 * check and to a private one for the connection (DNS rebinding).
 */
function postCallback(
  url: string,
  allowPrivate: boolean,
  headers: Record<string, string>,
  body: string,
): Promise<boolean> {
  const target = new URL(url);
  const refused = allowPrivate ? null : refusedCallbackUrl(target);
  if (refused !== null) return Promise.reject(new Error(`${target.hostname} is ${refused}`));
  const transport = target.protocol === "https:" ? https : http;
  return new Promise<boolean>((resolve, reject) => {
    const request = transport.request(target, {
      method: "POST",
      headers,
      agent: false,
      ...(allowPrivate ? {} : { lookup: lookupPublicAddress }),
    });
    const deadline = setTimeout(
      () => request.destroy(new Error(`no answer within ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    request.on("response", (response) => {
      clearTimeout(deadline);
      const status = response.statusCode ?? 0;
      response.destroy();
      request.destroy();
      resolve(status >= 200 && status < 300);
    });
    request.on("error", (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    request.end(body);
  });
}

/** `dns.lookup` that fails when any address the name resolves to is one a callback may not reach. */
const lookupPublicAddress: LookupFunction = (hostname, options, callback) => {
  lookupDns(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
    if (error !== null) {
      callback(error, "", 0);
      return;
    }
    for (const { address } of addresses) {
      const refused = refusedCallbackAddress(address);
      if (refused !== null) {
        callback(new Error(`${hostname} resolves to ${address}, ${refused}`), "", 0);
        return;
      }
    }
    if (options.all === true) callback(null, addresses, 0);
    else callback(null, addresses[0]?.address ?? "", addresses[0]?.family ?? 4);
  });
};
