/**
 * Runs one attempt of a task on a sandbox and classifies how it ended. Time limits escalate: the
 * task's `ctx.signal` fires a grace period before its deadline, and at the deadline the whole sandbox
 * is killed. A cancel fires the signal at once and kills after the same grace.
 */
import { sanitizeFailure, type Attempt, type Failure } from "../domain/task.js";
import type { ClaimedTask } from "../store/store.js";
import type { Sandbox, SandboxOutcome } from "./sandbox.js";

export interface AttemptResult {
  outcome: Attempt["outcome"];
  failure: Failure | null;
  /** JSON text of a succeeded attempt's result. */
  result: string | null;
  log: string;
  /** When the attempt really started: its task was sent to the sandbox (not when it was claimed). */
  startedAt: Date;
  finishedAt: Date;
}

interface ActiveAttempt {
  sandbox: Sandbox;
  stoppedFor: "timeout" | "cancel" | null;
  graceMs: number;
  timers: NodeJS.Timeout[];
}

/** The grace between `ctx.signal` and the kill: a tenth of the timeout, at most one second. */
export function computeGraceMs(timeoutMs: number): number {
  return Math.min(1000, Math.floor(timeoutMs / 10));
}

export class Runner {
  private readonly active = new Map<string, ActiveAttempt>();

  async run(
    task: ClaimedTask,
    sandbox: Sandbox,
    onProgress: (percent: number, message?: string) => void,
  ): Promise<AttemptResult> {
    const startedAt = new Date();
    if (sandbox.state !== "idle") {
      // It died between the claim and now (it was taken for this task while the claim committed).
      return fail("crashed", "the task's sandbox stopped before the task could start", "", startedAt);
    }
    // The task's whole timeout counts from now, its real start: a task claimed ahead and kept in its
    // lane's local queue has not used any of it while it waited there.
    const timeoutMs = task.timeoutS * 1000;
    const deadline = startedAt.getTime() + timeoutMs;
    const attempt: ActiveAttempt = {
      sandbox,
      stoppedFor: null,
      graceMs: computeGraceMs(timeoutMs),
      timers: [],
    };
    this.active.set(task.id, attempt);
    const untilDeadline = deadline - Date.now();
    attempt.timers.push(
      setTimeout(() => sandbox.abort(task.id, "timeout"), Math.max(0, untilDeadline - attempt.graceMs)),
      setTimeout(
        () => {
          attempt.stoppedFor ??= "timeout";
          sandbox.kill();
        },
        Math.max(0, untilDeadline),
      ),
    );
    try {
      const outcome = await sandbox.run(
        { taskId: task.id, attempt: task.attempt, payload: task.payload, deadline },
        onProgress,
      );
      return classify(outcome, attempt.stoppedFor, startedAt);
    } finally {
      attempt.timers.forEach(clearTimeout);
      this.active.delete(task.id);
    }
  }

  /** Stops a task running on this node; false when it is not running here. */
  cancel(taskId: string): boolean {
    const attempt = this.active.get(taskId);
    if (attempt === undefined) return false;
    attempt.stoppedFor = "cancel";
    attempt.sandbox.abort(taskId, "cancel");
    attempt.timers.push(setTimeout(() => attempt.sandbox.kill(), attempt.graceMs));
    return true;
  }

  get runningCount(): number {
    return this.active.size;
  }
}

function classify(
  outcome: SandboxOutcome,
  stoppedFor: ActiveAttempt["stoppedFor"],
  startedAt: Date,
): AttemptResult {
  const finishedAt = new Date();
  const { log } = outcome;
  if (outcome.type === "done" && outcome.failure === null) {
    return { outcome: "succeeded", failure: null, result: outcome.result, log, startedAt, finishedAt };
  }
  if (stoppedFor === "timeout") {
    return fail("timeout", "the task ran past its timeout and its sandbox was killed", log, startedAt);
  }
  if (stoppedFor === "cancel") return fail("cancelled", "the task was cancelled", log, startedAt);
  if (outcome.type === "exited") {
    return fail(outcome.outOfMemory ? "out_of_memory" : "crashed", outcome.reason, log, startedAt);
  }
  if (outcome.type === "malformed") {
    // A function that forges or floods the channel does it again on a retry.
    const failure: Failure = { kind: "crashed", message: outcome.reason, retryable: false };
    return {
      outcome: "crashed",
      failure: sanitizeFailure(failure),
      result: null,
      log,
      startedAt,
      finishedAt,
    };
  }
  const failure = outcome.failure ?? { kind: "handler_error", message: "unknown failure", retryable: true };
  return {
    outcome: failure.kind,
    failure: sanitizeFailure(failure),
    result: null,
    log,
    startedAt,
    finishedAt,
  };
}

/** A failed attempt that started at `startedAt` and ends now. */
export function fail(kind: Failure["kind"], message: string, log: string, startedAt: Date): AttemptResult {
  return {
    outcome: kind,
    // Running out of memory again in the same tier is the likely end of a retry: it is not retried.
    failure: { kind, message, retryable: kind !== "cancelled" && kind !== "out_of_memory" },
    result: null,
    log,
    startedAt,
    finishedAt: new Date(),
  };
}
