/**
 * One attempt from its start on a sandbox to its recorded end: the run, progress, the retry decision,
 * the end (batched with the other ends of its turn by `EndRecorder`), waking waiters and callbacks.
 * It also knows which attempts run on this node, for leases, graceful stops and hand-backs.
 */
import type { FunctionSettings } from "../domain/function-settings.js";
import type { Lane } from "../domain/lane.js";
import { decideNextState } from "../domain/retry-policy.js";
import type { Progress } from "../domain/task.js";
import type { Logger } from "../logger.js";
import type { AttemptResult, Runner } from "../runner/runner.js";
import type { Sandbox } from "../runner/sandbox.js";
import type { ClaimedTask, Store } from "../store/store.js";
import type { DelayTimer } from "./delay-timer.js";
import { EndRecorder } from "./end-recorder.js";
import type { TaskWatch } from "./task-watch.js";

export interface AttemptLifecycleOptions {
  store: Store;
  runner: Runner;
  watch: TaskWatch;
  delayTimer: DelayTimer;
  logger: Pick<Logger, "error">;
  /** Told whenever a task ends, so that a callback URL it carries is served. */
  callbacks: { wake(): void };
  /** An end of the lane is committed: the function's slot is free in the store too. */
  onEndRecorded(lane: Lane): void;
  /** How long a small batch of ends waits for more under load (`EndRecorder`). */
  endBatchLingerMs?: number;
}

export class AttemptLifecycle {
  /** Attempts running here whose end is not recorded yet, with the attempt (the same task may come back). */
  private readonly running = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly ends: EndRecorder;
  /** Ends are no longer recorded: what still runs is handed back. */
  private stopped = false;

  constructor(private readonly options: AttemptLifecycleOptions) {
    this.ends = new EndRecorder(options.store, options.endBatchLingerMs);
  }

  /**
   * Runs the task on the sandbox. `onSandboxFree` hears as soon as the sandbox is done with it (reset
   * and idle, or dead), before the end is recorded: the lane gives it its next task in the same turn.
   */
  start(
    task: ClaimedTask,
    sandbox: Sandbox,
    settings: FunctionSettings,
    onSandboxFree: (sandbox: Sandbox) => void,
  ): void {
    this.running.set(task.id, task.attempt);
    this.options.watch.started(task.id);
    const onProgress = (percent: number, message?: string) => {
      const progress: Progress = message === undefined ? { percent } : { percent, message };
      void this.options.store.updateProgress(task.id, task.attempt, progress).catch(() => {});
    };
    const done = this.options.runner
      .run(task, sandbox, onProgress)
      .then((result) => {
        // A node whose grace ran out kills its sandboxes: those attempts are handed back, not failed.
        if (this.stopped) return;
        onSandboxFree(sandbox);
        return this.finish(task, settings, result);
      })
      .catch((error: unknown) =>
        this.options.logger.error({ err: error, taskId: task.id }, "recording the end of a task failed"),
      )
      .finally(() => {
        this.inFlight.delete(done);
        if (this.running.get(task.id) === task.attempt) this.running.delete(task.id);
      });
    this.inFlight.add(done);
  }

  /** Ends a claimed task that never got a sandbox (its sandbox failed to start) as `crashed`. */
  async failUnstarted(task: ClaimedTask, settings: FunctionSettings, reason: string): Promise<void> {
    const now = new Date();
    await this.finish(task, settings, {
      outcome: "crashed",
      failure: { kind: "crashed", message: reason, retryable: true },
      result: null,
      log: "",
      startedAt: now,
      finishedAt: now,
    });
  }

  runningTaskIds(): string[] {
    return [...this.running.keys()];
  }

  /** The attempts started here whose end is not recorded: what a stop hands back. */
  unfinished(): { taskId: string; attempt: number }[] {
    return [...this.running].map(([taskId, attempt]) => ({ taskId, attempt }));
  }

  /**
   * Waits until no attempt runs here, `timeoutMs` has passed or `signal` aborts; `onWaiting` hears how
   * many still run whenever that number changes.
   */
  async waitUntilNoneRuns(
    timeoutMs: number,
    signal?: AbortSignal,
    onWaiting?: (running: number, remainingMs: number) => void,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const givingUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      signal?.addEventListener("abort", () => resolve(), { once: true });
    });
    try {
      while (this.inFlight.size > 0 && Date.now() < deadline && signal?.aborted !== true) {
        onWaiting?.(this.inFlight.size, deadline - Date.now());
        await Promise.race([givingUp, ...this.inFlight]);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queues the given attempts again, not counted as `lost` nor charged (their sandboxes are stopped).
   * Returns how many were handed back; those it could not (the database is down) are recovered as
   * `lost` later, by the next start of this node or by another node once this node's lease expires.
   */
  async handBack(
    attempts: { taskId: string; attempt: number }[],
    onError: (error: unknown) => void,
  ): Promise<number> {
    if (attempts.length === 0) return 0;
    try {
      return await this.options.store.handBackTasks(attempts);
    } catch (error) {
      onError(error);
      return 0;
    }
  }

  /** Stops recording ends (see `unfinished`). */
  stop(): void {
    this.stopped = true;
    this.ends.stop();
  }

  /** Waits until every attempt end in progress has been recorded. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private async finish(task: ClaimedTask, settings: FunctionSettings, result: AttemptResult): Promise<void> {
    const next = decideNextState(
      result.outcome,
      result.failure,
      task.chargedAttempts,
      settings,
      result.finishedAt,
    );
    const header = task.attempt > 1 && result.log !== "" ? `--- attempt ${task.attempt} ---\n` : "";
    await this.ends.record({
      taskId: task.id,
      attempt: task.attempt,
      startedAt: result.startedAt,
      finishedAt: result.finishedAt,
      outcome: result.outcome,
      failure: result.failure,
      result: result.result,
      log: header + result.log,
      next,
    });
    if (next.state === "delayed") this.options.delayTimer.arm(next.runAt);
    else {
      this.options.watch.ended(task.id);
      // Only an end that queued a callback: each wake costs the store a poll of the outbox.
      if (task.hasCallback) this.options.callbacks.wake();
    }
    this.options.onEndRecorded(task.lane);
  }
}
