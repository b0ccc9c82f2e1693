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
    if (sandbox.state !== "idle") {
      // It died between the claim and now (it was taken for this task while the claim committed).
      return fail("crashed", "the task's sandbox stopped before the task could start", "", new Date());
    }
    const timeoutMs = task.timeoutS * 1000;
    const deadline = task.startedAt.getTime() + timeoutMs;
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
      return classify(outcome, attempt.stoppedFor);
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

function classify(outcome: SandboxOutcome, stoppedFor: ActiveAttempt["stoppedFor"]): AttemptResult {
  const finishedAt = new Date();
  if (outcome.type === "done" && outcome.failure === null) {
    return { outcome: "succeeded", failure: null, result: outcome.result, log: outcome.log, finishedAt };
  }
  const log = outcome.log;
  if (stoppedFor === "timeout") {
    return fail("timeout", "the task ran past its timeout and its sandbox was killed", log, finishedAt);
  }
  if (stoppedFor === "cancel") return fail("cancelled", "the task was cancelled", log, finishedAt);
  if (outcome.type === "exited") {
    return fail(outcome.outOfMemory ? "out_of_memory" : "crashed", outcome.reason, log, finishedAt);
  }
  if (outcome.type === "malformed") {
    // A function that forges or floods the channel does it again on a retry.
    const failure: Failure = { kind: "crashed", message: outcome.reason, retryable: false };
    return { outcome: "crashed", failure: sanitizeFailure(failure), result: null, log, finishedAt };
  }
  const failure = outcome.failure ?? { kind: "handler_error", message: "unknown failure", retryable: true };
  return { outcome: failure.kind, failure: sanitizeFailure(failure), result: null, log, finishedAt };
}

function fail(kind: Failure["kind"], message: string, log: string, finishedAt: Date): AttemptResult {
  return {
    outcome: kind,
    // Running out of memory again in the same tier is the likely end of a retry: it is not retried.
    failure: { kind, message, retryable: kind !== "cancelled" && kind !== "out_of_memory" },
    result: null,
    log,
    finishedAt,
  };
}
