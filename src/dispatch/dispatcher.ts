/**
 * The dispatcher decides what runs next. It is event-driven: an enqueue, a sandbox becoming idle, the
 * delay timer or another node's news wakes a lane, and one dispatch pass then claims as many of the
 * lane's tasks as it has idle sandboxes (within the function's `maxConcurrency`). With other nodes, a
 * poll now and then makes up for news that got lost.
 */
import type { Lane } from "../domain/lane.js";
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";
import type { Cluster, ClusterEvents } from "../cluster/cluster.js";
import type { Logger } from "../logger.js";
import { KilnError } from "../domain/errors.js";
import { decideNextState } from "../domain/retry-policy.js";
import { isFinal, type Progress, type Task } from "../domain/task.js";
import type { AttemptResult, Runner } from "../runner/runner.js";
import type { Sandbox } from "../runner/sandbox.js";
import { tierFor } from "../runner/memory-tiers.js";
import { laneKey, type LaneConfig, type SandboxPool } from "../runner/sandbox-pool.js";
import {
  StoreUnavailableError,
  type ClaimedTask,
  type EnqueueResult,
  type NewTask,
  type Store,
} from "../store/store.js";
import { DelayTimer } from "./delay-timer.js";
import { EndRecorder } from "./end-recorder.js";
import { TaskWatch } from "./task-watch.js";

export interface DispatcherOptions {
  /** Where failures of background work (claims, ends, polls) are reported. */
  logger: Pick<Logger, "error" | "warn">;
  store: Store;
  pool: SandboxPool;
  runner: Runner;
  /** The other nodes, asked to stop a task that runs on one of them. */
  cluster: Pick<Cluster, "requestCancel" | "announceFunctionChanged">;
  maxLostAttempts: number;
  /** Told whenever a task ends, so that a callback URL it carries is served. */
  callbacks: { wake(): void };
  /** The memory tiers sandboxes are sized to. */
  memoryTiersMb: readonly number[];
  /** Functions with a longer timeout than this run in the long pool. */
  longTaskThresholdS: number;
  /** Sandboxes a lane may be starting at once while it has a backlog. */
  maxStartingPerLane?: number;
}

interface LaneFunction {
  settings: FunctionSettings;
  /** Spec per revision digest (a lane may run an older revision than the current one). */
  specs: Map<string, RevisionSpec>;
}

const functionKey = (project: string, name: string) => `${project}/${name}`;
const oldestFirstEvery = 5;
/**
 * Dispatch passes in flight at once. A claim on PostgreSQL is a few round trips: while one waits,
 * sandboxes that free up are refilled by the next pass instead of waiting for it (each pass takes the
 * sandboxes it claims for before it claims, so passes never count the same sandbox twice).
 */
const maxConcurrentPasses = 4;

export class Dispatcher implements ClusterEvents {
  private readonly store: Store;
  private readonly pool: SandboxPool;
  private readonly runner: Runner;
  private readonly readyLanes = new Map<string, Lane>();
  private readonly functions = new Map<string, LaneFunction>();
  private readonly runningPerFunction = new Map<string, number>();
  private readonly startsPerLane = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Tasks started here whose end is not recorded yet, with the attempt (the same task may come back). */
  private readonly ownTasks = new Map<string, number>();
  private readonly watch: TaskWatch;
  private readonly delayTimer: DelayTimer;
  private readonly ends: EndRecorder;
  /** Wakes per lane: a pass that began before the latest wake must not call the lane drained. */
  private readonly laneWakes = new Map<string, number>();
  private passScheduled = false;
  private passesRunning = 0;
  private passWanted = false;
  /** No new claims (a graceful stop began); running attempts finish and their ends are recorded. */
  private draining = false;
  /** Ends are no longer recorded: what still runs is handed back (see `handBack`). */
  private stopped = false;

  constructor(private readonly options: DispatcherOptions) {
    this.store = options.store;
    this.pool = options.pool;
    this.runner = options.runner;
    this.delayTimer = new DelayTimer(() => void this.releaseDueTasks());
    this.ends = new EndRecorder(this.store);
    this.watch = new TaskWatch({
      store: this.store,
      // A lane with no sandbox yet counts as starting one: the dispatch pass that grows it may not have
      // run by the admission deadline (on PostgreSQL it reads the function first).
      startingFor: (task) => {
        const lane = laneOf(task);
        return this.pool.startingCount(lane) + (this.pool.isCold(lane) ? 1 : 0);
      },
      onCancelled: () => options.callbacks.wake(),
    });
  }

  /** Recovers what a previous life of this node left running, then starts dispatching. */
  async start(): Promise<void> {
    await this.pool.reapOrphans();
    await this.store.recoverInterruptedTasks(new Date(), this.options.maxLostAttempts);
    this.options.callbacks.wake(); // deliveries due before the restart, and tasks that just ended lost
    await this.releaseDueTasks();
    for (const lane of await this.store.listReadyLanes()) this.wake(lane);
    for (const fn of await this.store.listWarmFunctions()) await this.keepWarm(fn.project, fn.name);
  }

  laneReady(lane: Lane): void {
    this.wake(lane);
  }

  taskStarted(taskId: string): void {
    this.watch.started(taskId);
  }

  taskEnded(taskId: string): void {
    this.watch.ended(taskId);
  }

  cancelRequested(taskId: string): void {
    this.runner.cancel(taskId);
  }

  ownTaskIds(): string[] {
    return [...this.ownTasks.keys()];
  }

  /** Looks for work and outcomes that another node's lost notification would have announced. */
  poll(): void {
    if (this.stopped) return;
    // Waiters read their task again: one that ended on another node unannounced is found now. And
    // settings are read again: a change made through another node, unannounced, is seen now.
    this.watch.recheck();
    this.functions.clear();
    if (this.draining) return;
    void this.releaseDueTasks()
      .then(() => this.store.listReadyLanes())
      .then((lanes) => lanes.forEach((lane) => this.wake(lane)))
      .catch((error: unknown) => this.reportStoreError("polling", error));
  }

  /** A sandbox exited somewhere: lanes that were waiting for room may grow now. */
  roomFreed(): void {
    if (this.readyLanes.size > 0) this.schedulePass();
  }

  /** Starts the sandboxes a function asks to keep warm for its current revision. */
  private async keepWarm(project: string, name: string): Promise<void> {
    const record = await this.store.getFunction(project, name);
    if (record === null || record.settings.minWarm === 0 || this.draining) return;
    const lane: Lane = { project, functionName: name, revision: record.currentRevision };
    const fn = await this.laneFunction(lane);
    const spec = fn?.specs.get(lane.revision);
    if (fn !== null && spec !== undefined) this.pool.keepWarm(lane, this.laneConfig(fn, spec));
  }

  /** The tier and pool a function's sandboxes go to. */
  private laneConfig(fn: LaneFunction, spec: RevisionSpec): LaneConfig {
    const { memoryTiersMb, longTaskThresholdS } = this.options;
    const tierMb = tierFor(fn.settings.memoryMb, memoryTiersMb) ?? Math.max(...memoryTiersMb);
    return { spec, settings: fn.settings, tierMb, long: fn.settings.timeoutS > longTaskThresholdS };
  }

  /**
   * The first step of a graceful stop: no more claims from now on (queued tasks wait for another node
   * or the next start), while running attempts finish and their ends are recorded as usual.
   */
  stopClaiming(): void {
    this.draining = true;
    this.delayTimer.stop();
  }

  /**
   * Waits until no attempt runs here, `timeoutMs` has passed or `signal` aborts; `onWaiting` hears how
   * many still run whenever that number changes.
   */
  async waitForRunningTasks(
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
   * Stops recording ends: attempts still running are to be handed back once their sandboxes are
   * stopped (see `handBack`), and waiters get their task as it is now.
   */
  stop(): void {
    this.draining = true;
    this.stopped = true;
    this.ends.stop();
    this.delayTimer.stop();
    this.watch.stop();
  }

  /** The attempts started here whose end is not recorded: what `handBack` gives back after `stop`. */
  unfinishedAttempts(): { taskId: string; attempt: number }[] {
    return [...this.ownTasks].map(([taskId, attempt]) => ({ taskId, attempt }));
  }

  /**
   * Queues the given attempts again, not counted as `lost` nor charged (their sandboxes are stopped).
   * Returns how many were handed back; those it could not (the database is down) are recovered as
   * `lost` later, by the next start of this node or by another node once this node's lease expires.
   */
  async handBack(attempts: { taskId: string; attempt: number }[]): Promise<number> {
    if (attempts.length === 0) return 0;
    try {
      return await this.store.handBackTasks(attempts);
    } catch (error) {
      this.reportStoreError("handing back running tasks", error);
      return 0;
    }
  }

  /** Waits until every attempt end in progress has been recorded. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /**
   * Commits new tasks. When idle sandboxes are waiting for their lane, they are reserved first and the
   * tasks are claimed in the same commit, so a task that can start at once costs one commit.
   */
  async enqueue(tasks: NewTask[]): Promise<EnqueueResult[]> {
    await this.refuseTimeoutsAboveTheirPool(tasks);
    const target = this.warmTarget(tasks);
    const { results } =
      target === null
        ? { results: await this.store.enqueueTasks(tasks) }
        : await this.claimOnto(target.key, target.fn, target.sandboxes, () =>
            this.store.enqueueAndClaimTasks(tasks, {
              lane: target.lane,
              limit: target.sandboxes.length,
              now: new Date(),
              maxConcurrency: target.fn.settings.maxConcurrency,
            }),
          );
    for (const { task, created } of results) {
      if (!created) continue;
      if (task.state === "queued") this.wake(laneOf(task), true);
      else if (task.state === "delayed") this.delayTimer.arm(task.runAt);
    }
    return results;
  }

  /**
   * A task runs in its function's pool, chosen by the function's `timeoutS`. A `timeoutS` override that
   * would keep a short-pool sandbox busy past the long threshold is refused: such tasks would escape
   * the long pool's share of the budget that keeps long tasks from starving short ones.
   */
  private async refuseTimeoutsAboveTheirPool(tasks: NewTask[]): Promise<void> {
    const thresholdS = this.options.longTaskThresholdS;
    for (const task of tasks) {
      if (task.timeoutS <= thresholdS) continue;
      const fn = await this.laneFunction({
        project: task.project,
        functionName: task.functionName,
        revision: task.revision,
      });
      if (fn === null || fn.settings.timeoutS > thresholdS) continue;
      throw new KilnError(
        "BAD_REQUEST",
        `timeoutS ${task.timeoutS} is more than ${thresholdS}, the longest a task of '${task.functionName}' ` +
          `may run: the function's own timeoutS (${fn.settings.timeoutS}) keeps it in the pool of short tasks. ` +
          `Ask for at most ${thresholdS}, or set the function's timeoutS above ${thresholdS} so that its ` +
          "tasks run in the long pool",
        { details: { field: "timeoutS", max: thresholdS, functionTimeoutS: fn.settings.timeoutS } },
      );
    }
  }

  /** The lane new tasks can start in now, with the idle sandboxes they can start on; null for none. */
  private warmTarget(tasks: NewTask[]) {
    const first = tasks.find((task) => task.runAt <= task.createdAt);
    if (first === undefined || this.draining) return null;
    const lane: Lane = { project: first.project, functionName: first.functionName, revision: first.revision };
    const key = functionKey(lane.project, lane.functionName);
    const fn = this.functions.get(key);
    if (fn === undefined || fn.settings.paused || !fn.specs.has(lane.revision)) return null;
    const sandboxes = this.takeSandboxes(lane, key, fn, tasks.length);
    return sandboxes.length === 0 ? null : { lane, key, fn, sandboxes };
  }

  /** What the function's `maxConcurrency` leaves it on this node (Infinity without a limit). */
  private roomFor(key: string, fn: LaneFunction): number {
    const running = this.runningPerFunction.get(key) ?? 0;
    return fn.settings.maxConcurrency > 0 ? fn.settings.maxConcurrency - running : Infinity;
  }

  /** Up to `wanted` idle sandboxes of the lane, within the function's room. */
  private takeSandboxes(lane: Lane, key: string, fn: LaneFunction, wanted: number): Sandbox[] {
    const limit = Math.min(wanted, this.roomFor(key, fn));
    const sandboxes: Sandbox[] = [];
    for (let sandbox; sandboxes.length < limit && (sandbox = this.pool.takeIdle(lane)) !== null;) {
      sandboxes.push(sandbox);
    }
    return sandboxes;
  }

  /**
   * Runs `claim` for `sandboxes`, counted as running meanwhile (so that other passes leave them alone
   * and respect the limit), then starts the claimed tasks on them and makes the rest idle again.
   */
  private async claimOnto<T extends { claimed: ClaimedTask[] }>(
    key: string,
    fn: LaneFunction,
    sandboxes: Sandbox[],
    claim: () => Promise<T>,
  ): Promise<T> {
    this.runningPerFunction.set(key, (this.runningPerFunction.get(key) ?? 0) + sandboxes.length);
    let outcome: T | undefined;
    try {
      outcome = await claim();
    } finally {
      this.runningPerFunction.set(key, (this.runningPerFunction.get(key) ?? 0) - sandboxes.length);
      sandboxes.slice(outcome?.claimed.length ?? 0).forEach((sandbox) => this.pool.putBack(sandbox));
    }
    outcome.claimed.forEach((task, index) => this.startAttempt(task, fn, key, sandboxes[index] as Sandbox));
    return outcome;
  }

  /** Cancels a task: a pending one at once, a running one by stopping its sandbox, wherever it runs. */
  async cancel(project: string, id: string): Promise<Task | null> {
    const task = await this.store.getTask(project, id);
    if (task === null || isFinal(task.state)) return task;
    if (task.state === "running") {
      let stopping = this.runner.cancel(id);
      if (!stopping) {
        // Another node runs it: watched first, so that its end is announced to this node.
        await this.store.watchTask(project, id);
        stopping = await this.options.cluster.requestCancel(id);
      }
      if (stopping) {
        await this.waitForTask(project, id, 10_000);
        return this.store.getTask(project, id);
      }
    }
    const cancelled = await this.store.cancelPendingTask(project, id, new Date());
    if (cancelled !== null && isFinal(cancelled.state)) {
      this.watch.ended(id);
      this.options.callbacks.wake();
    }
    return cancelled;
  }

  async retry(project: string, id: string): Promise<Task | null> {
    const task = await this.store.requeueFinishedTask(project, id, new Date());
    if (task?.state === "queued") this.wake(laneOf(task));
    return task;
  }

  /** See `TaskWatch.admit`. */
  admit(project: string, id: string, admissionMs: number, coldStartMs?: number): Promise<boolean> {
    return this.watch.admit(project, id, admissionMs, coldStartMs);
  }

  /** Resolves with the task once it is final, or as it is after `timeoutMs`. */
  waitForTask(project: string, id: string, timeoutMs: number): Promise<Task | null> {
    return this.watch.waitForTask(project, id, timeoutMs);
  }

  /**
   * A function was deployed, rolled back or changed: forget its cached settings and wake its lanes.
   * `sandboxesStale` (its env or memory changed) also stops its idle sandboxes, which were started
   * with the old values; busy ones finish their task first and are then replaced.
   */
  functionChanged(project: string, name: string, sandboxesStale: boolean): void {
    this.options.cluster.announceFunctionChanged(project, name, sandboxesStale);
    this.functionChangedElsewhere(project, name, sandboxesStale);
  }

  /** Another node changed the function: as `functionChanged`, without telling the others again. */
  functionChangedElsewhere(project: string, name: string, sandboxesStale: boolean): void {
    this.functions.delete(functionKey(project, name));
    if (sandboxesStale) for (const lane of this.pool.lanesOf(project, name)) this.pool.retireIdle(lane);
    void this.keepWarm(project, name).catch((error: unknown) =>
      this.options.logger.error({ err: error }, "keeping sandboxes warm failed"),
    );
    for (const lane of this.readyLanes.values()) {
      if (lane.project === project && lane.functionName === name) this.schedulePass();
    }
  }

  /**
   * Marks the lane as having work. `now` (a fresh enqueue) dispatches at once; otherwise (sandboxes
   * freeing up) the pass waits for the end of the current I/O phase, so attempt ends that arrive
   * together are refilled by one claim.
   */
  wake(lane: Lane, now = false): void {
    if (this.draining) return;
    const key = laneKey(lane);
    this.readyLanes.set(key, lane);
    this.laneWakes.set(key, (this.laneWakes.get(key) ?? 0) + 1);
    this.schedulePass(now);
  }

  private schedulePass(now = false): void {
    if (this.draining) return;
    if (now && this.passesRunning < maxConcurrentPasses) {
      void this.pass();
      return;
    }
    if (this.passScheduled) return;
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      void this.pass();
    });
  }

  private async pass(): Promise<void> {
    if (this.passesRunning >= maxConcurrentPasses) {
      this.passWanted = true; // run once one of them ends
      return;
    }
    this.passesRunning += 1;
    try {
      for (const [key, lane] of [...this.readyLanes]) {
        if (this.draining) return;
        const wakes = this.laneWakes.get(key);
        const drained = await this.dispatchLane(lane);
        // Woken meanwhile (a task enqueued after the claim read the lane, or while another pass held the
        // idle sandboxes): the lane is looked at again, not dropped.
        if (this.laneWakes.get(key) !== wakes) this.schedulePass();
        else if (drained) this.readyLanes.delete(key);
      }
    } catch (error) {
      this.reportStoreError("dispatching", error);
    } finally {
      this.passesRunning -= 1;
      if (this.passWanted) {
        this.passWanted = false;
        this.schedulePass();
      }
    }
  }

  /** Starts what the lane can start now; true when the lane has nothing queued. */
  private async dispatchLane(lane: Lane): Promise<boolean> {
    const fn = await this.laneFunction(lane);
    if (fn === null) return true;
    const spec = fn.specs.get(lane.revision);
    if (spec === undefined || fn.settings.paused) return false;
    const key = functionKey(lane.project, lane.functionName);
    const room = this.roomFor(key, fn);
    const sandboxes = this.takeSandboxes(lane, key, fn, Infinity);
    const slots = sandboxes.length;
    const { claimed } =
      slots === 0
        ? { claimed: [] }
        : await this.claimOnto(key, fn, sandboxes, async () => {
            const { maxConcurrency } = fn.settings;
            const oldest = this.oldestFirstSlots(lane, slots);
            const now = new Date();
            return {
              claimed: [
                ...(oldest > 0
                  ? await this.store.claimTasks(lane, oldest, now, { order: "oldest", maxConcurrency })
                  : []),
                ...(slots > oldest
                  ? await this.store.claimTasks(lane, slots - oldest, now, { maxConcurrency })
                  : []),
              ],
            };
          });
    const drained = claimed.length < slots;
    // A backlog with no idle sandbox left: start more, within the concurrency room and the node's slots.
    const starting = this.pool.startingCount(lane);
    const wanted = Math.min(room - slots - starting, (this.options.maxStartingPerLane ?? 2) - starting);
    if (!drained && this.pool.idleCount(lane) === 0 && wanted > 0) {
      this.pool.grow(lane, this.laneConfig(fn, spec));
    }
    return drained;
  }

  /**
   * How many of the next `slots` starts of the lane go to its oldest tasks whatever their priority:
   * one start in `oldestFirstEvery`. Higher classes (sync, then background) go first, but a sustained
   * stream of them still leaves a fifth of the lane's starts to the oldest waiting task: nothing starves.
   */
  private oldestFirstSlots(lane: Lane, slots: number): number {
    const key = laneKey(lane);
    const before = this.startsPerLane.get(key) ?? 0;
    this.startsPerLane.set(key, before + slots);
    return Math.floor((before + slots) / oldestFirstEvery) - Math.floor(before / oldestFirstEvery);
  }

  private startAttempt(task: ClaimedTask, fn: LaneFunction, key: string, sandbox: Sandbox): void {
    this.runningPerFunction.set(key, (this.runningPerFunction.get(key) ?? 0) + 1);
    this.ownTasks.set(task.id, task.attempt);
    this.watch.started(task.id);
    const onProgress = (percent: number, message?: string) => {
      const progress: Progress = message === undefined ? { percent } : { percent, message };
      void this.store.updateProgress(task.id, task.attempt, progress).catch(() => {});
    };
    const done = this.runner
      .run(task, sandbox, onProgress)
      .then((result) => {
        // A node whose grace ran out kills its sandboxes: those attempts are handed back, not failed.
        if (this.stopped) return;
        this.runningPerFunction.set(key, (this.runningPerFunction.get(key) ?? 1) - 1);
        this.pool.release(sandbox);
        return this.finishAttempt(task, fn.settings, result);
      })
      .catch((error: unknown) =>
        this.options.logger.error({ err: error, taskId: task.id }, "recording the end of a task failed"),
      )
      .finally(() => {
        this.inFlight.delete(done);
        if (this.ownTasks.get(task.id) === task.attempt) this.ownTasks.delete(task.id);
      });
    this.inFlight.add(done);
  }

  private async finishAttempt(
    task: ClaimedTask,
    settings: FunctionSettings,
    result: AttemptResult,
  ): Promise<void> {
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
      startedAt: task.startedAt,
      finishedAt: result.finishedAt,
      outcome: result.outcome,
      failure: result.failure,
      result: result.result,
      log: header + result.log,
      next,
    });
    if (next.state === "delayed") this.delayTimer.arm(next.runAt);
    else {
      this.watch.ended(task.id);
      this.options.callbacks.wake();
    }
    // Re-check the lane: a concurrency slot of the function just freed up.
    this.wake(task.lane);
  }

  /** A sandbox could not start: the next task of the lane fails with the reason, as its attempt would. */
  async failStart(lane: Lane, reason: string): Promise<void> {
    if (this.draining) return;
    const fn = await this.laneFunction(lane);
    const [task] = await this.store.claimTasks(lane, 1, new Date());
    if (fn === null || task === undefined) return;
    const finishedAt = new Date();
    await this.finishAttempt(task, fn.settings, {
      outcome: "crashed",
      failure: { kind: "crashed", message: reason, retryable: true },
      result: null,
      log: "",
      finishedAt,
    });
  }

  /** An unreachable database is reported in one line: it is expected to come back. */
  private reportStoreError(doing: string, error: unknown): void {
    if (error instanceof StoreUnavailableError) this.options.logger.warn(`${doing} failed: ${error.message}`);
    else this.options.logger.error({ err: error }, `${doing} failed`);
  }

  private async releaseDueTasks(): Promise<void> {
    if (this.draining) return;
    try {
      for (const lane of await this.store.releaseDueTasks(new Date())) this.wake(lane);
      const next = await this.store.nextRunAt();
      if (next !== null) this.delayTimer.arm(next);
    } catch (error) {
      // Tried again at the next poll (many nodes) or the next delayed task (one node).
      this.reportStoreError("releasing delayed tasks", error);
    }
  }

  private async laneFunction(lane: Lane): Promise<LaneFunction | null> {
    const key = functionKey(lane.project, lane.functionName);
    let fn = this.functions.get(key);
    if (fn === undefined || !fn.specs.has(lane.revision)) {
      const record = await this.store.getFunction(lane.project, lane.functionName);
      if (record === null) return null;
      const revisions = await this.store.listRevisions(lane.project, lane.functionName);
      fn = {
        settings: record.settings,
        specs: new Map(revisions.map((revision) => [revision.digest, revision.spec])),
      };
      this.functions.set(key, fn);
    }
    return fn;
  }
}

function laneOf(task: Task): Lane {
  return { project: task.project, functionName: task.functionName, revision: task.revision };
}
