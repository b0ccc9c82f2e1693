/**
 * The dispatcher decides what runs next on this node. Work is organised in lanes (`DispatchLane`: one
 * function revision, its local queue of tasks claimed ahead and its sandboxes); the dispatcher routes
 * events to them (an enqueue, a sandbox started, the delay timer, another node's news, room freed on the
 * node), keeps latency classes between lanes (`RoomWaitlist`), and runs the node's start and stop.
 */
import type { Cluster, ClusterEvents } from "../cluster/cluster.js";
import type { Logger } from "../logger.js";
import { functionKey, laneKey, laneOf, type Lane } from "../domain/lane.js";
import type { Task } from "../domain/task.js";
import type { Runner } from "../runner/runner.js";
import type { SandboxPool } from "../runner/sandbox-pool.js";
import { StoreUnavailableError, type EnqueueResult, type NewTask, type Store } from "../store/store.js";
import { AttemptLifecycle } from "./attempt-lifecycle.js";
import { DelayTimer } from "./delay-timer.js";
import { DispatchLane, type LaneContext } from "./dispatch-lane.js";
import { FunctionCache } from "./function-cache.js";
import { FunctionSlots } from "./function-slots.js";
import { LanePlacement } from "./lane-placement.js";
import { RoomWaitlist } from "./room-waitlist.js";
import { TaskCancellation } from "./task-cancellation.js";
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
  /** A local queue none of whose tasks started for this long is handed back (default 5 s). */
  localQueueIdleMs?: number;
  /** How long a small batch of attempt ends waits for more under load (default 0: none). */
  endBatchLingerMs?: number;
}

export class Dispatcher implements ClusterEvents {
  private readonly store: Store;
  private readonly pool: SandboxPool;
  private readonly lanes = new Map<string, DispatchLane>();
  private readonly functions: FunctionCache;
  private readonly placement: LanePlacement;
  private readonly slots = new FunctionSlots();
  private readonly waitlist = new RoomWaitlist<DispatchLane>();
  private readonly attempts: AttemptLifecycle;
  private readonly watch: TaskWatch;
  private readonly cancellation: TaskCancellation;
  private readonly delayTimer: DelayTimer;
  private readonly laneContext: LaneContext;
  private readonly handingBack = new Set<Promise<void>>();
  private readonly idleSweep: NodeJS.Timeout;
  /** No new claims (a graceful stop began); running attempts finish and their ends are recorded. */
  private draining = false;
  private stopped = false;

  constructor(private readonly options: DispatcherOptions) {
    this.store = options.store;
    this.pool = options.pool;
    this.functions = new FunctionCache(this.store);
    this.placement = new LanePlacement(options, this.functions);
    this.delayTimer = new DelayTimer(() => void this.releaseDueTasks());
    this.watch = new TaskWatch({
      store: this.store,
      startingFor: (task) => this.capacityComing(laneOf(task)),
      onCancelled: () => options.callbacks.wake(),
      holdsUnstarted: (taskId) => this.laneHolding(taskId) !== undefined,
      releaseUnstarted: (taskId) => this.releaseUnstarted(taskId),
    });
    this.cancellation = new TaskCancellation({
      store: this.store,
      runner: options.runner,
      cluster: options.cluster,
      watch: this.watch,
      callbacks: options.callbacks,
      projectHeld: (taskId) => this.laneHolding(taskId)?.lane.project,
      releaseUnstarted: (taskId) => this.releaseUnstarted(taskId),
      reportError: (doing, error) => this.reportStoreError(doing, error),
    });
    this.attempts = new AttemptLifecycle({
      store: this.store,
      runner: options.runner,
      watch: this.watch,
      delayTimer: this.delayTimer,
      logger: options.logger,
      callbacks: options.callbacks,
      endBatchLingerMs: options.endBatchLingerMs,
      // The function's slot is free in the store too: a claim cut short by its limit may go on.
      onEndRecorded: (lane) => this.laneFor(lane).endRecorded(),
    });
    this.laneContext = {
      store: this.store,
      pool: this.pool,
      functions: this.functions,
      slots: this.slots,
      attempts: this.attempts,
      waitlist: this.waitlist,
      laneConfig: (fn, spec) => this.placement.configFor(fn, spec),
      maxStartingPerLane: options.maxStartingPerLane ?? 2,
      isDraining: () => this.draining,
      reportError: (doing, error) => this.reportStoreError(doing, error),
    };
    const idleMs = options.localQueueIdleMs ?? 5000;
    this.idleSweep = setInterval(() => this.handBackUnusedQueues(idleMs), Math.min(1000, idleMs)).unref();
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
    this.cancellation.cancelRequested(taskId);
  }

  /** Tasks this node holds: running here, or claimed ahead in a local queue (both under its lease). */
  ownTaskIds(): string[] {
    return [
      ...this.attempts.runningTaskIds(),
      ...[...this.lanes.values()].flatMap((lane) => lane.heldTaskIds()),
    ];
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

  /** A sandbox exited somewhere: lanes waiting for room start theirs, higher classes first. */
  roomFreed(): void {
    const waiting = [...this.lanes.values()].filter((lane) => lane.waiting > 0);
    for (const lane of waiting.sort((a, b) => b.topPriority() - a.topPriority())) lane.pump();
  }

  /** A sandbox of the lane finished starting and is idle. */
  sandboxIdle(lane: Lane): void {
    this.laneFor(lane).pump();
  }

  /** Starts the sandboxes a function asks to keep warm for its current revision. */
  private async keepWarm(project: string, name: string): Promise<void> {
    const record = await this.store.getFunction(project, name);
    if (record === null || record.settings.minWarm === 0 || this.draining) return;
    const lane: Lane = { project, functionName: name, revision: record.currentRevision };
    const fn = await this.functions.get(lane);
    const spec = fn?.specs.get(lane.revision);
    if (fn != null && spec !== undefined) this.pool.keepWarm(lane, this.placement.configFor(fn, spec));
  }

  /**
   * The first step of a graceful stop: no more claims from now on, and what the lanes claimed ahead goes
   * back to the store at once (for another node or the next start), while running attempts finish and
   * their ends are recorded as usual.
   */
  stopClaiming(): void {
    this.draining = true;
    this.delayTimer.stop();
    clearInterval(this.idleSweep);
    for (const lane of this.lanes.values()) this.track(lane.handBackAll());
  }

  /** See `AttemptLifecycle.waitUntilNoneRuns`. */
  waitForRunningTasks(
    timeoutMs: number,
    signal?: AbortSignal,
    onWaiting?: (running: number, remainingMs: number) => void,
  ): Promise<void> {
    return this.attempts.waitUntilNoneRuns(timeoutMs, signal, onWaiting);
  }

  /**
   * Stops recording ends: attempts still running are to be handed back once their sandboxes are
   * stopped (see `handBack`), and waiters get their task as it is now.
   */
  stop(): void {
    this.stopClaimingOnce();
    this.stopped = true;
    this.attempts.stop();
    this.watch.stop();
  }

  /**
   * What `handBack` gives back after `stop`: the attempts started here whose end is not recorded, and
   * tasks still claimed ahead (a claim that answered after the stop began).
   */
  unfinishedAttempts(): { taskId: string; attempt: number }[] {
    const held = [...this.lanes.values()].flatMap((lane) => lane.takeAll());
    return [
      ...this.attempts.unfinished(),
      ...held.map((task) => ({ taskId: task.id, attempt: task.attempt })),
    ];
  }

  /** See `AttemptLifecycle.handBack`. */
  handBack(attempts: { taskId: string; attempt: number }[]): Promise<number> {
    return this.attempts.handBack(attempts, (error) => this.reportStoreError("handing back tasks", error));
  }

  /** Waits until every attempt end and every hand-back in progress has been recorded. */
  async settle(): Promise<void> {
    await this.attempts.settle();
    while (this.handingBack.size > 0) await Promise.all([...this.handingBack]);
  }

  /**
   * Commits new tasks. When idle sandboxes of their lane are waiting, they are reserved first and the
   * tasks are claimed in the same commit, so a task that can start at once costs one commit. A sync
   * invoke's commit does not wait for an fsync (see README, "Synchronous invoke").
   */
  async enqueue(tasks: NewTask[]): Promise<EnqueueResult[]> {
    await this.placement.refuseTimeoutsAboveTheirPool(tasks);
    const results = await this.enqueueOntoIdleSandboxes(tasks);
    const fresh = new Map<string, { lane: Lane; count: number; priority: number }>();
    for (const { task, created } of results) {
      if (!created) continue;
      if (task.state === "queued") {
        const lane = laneOf(task);
        const entry = fresh.get(laneKey(lane)) ?? { lane, count: 0, priority: -1 };
        entry.count += 1;
        entry.priority = Math.max(entry.priority, task.priority);
        fresh.set(laneKey(lane), entry);
      } else if (task.state === "delayed") this.delayTimer.arm(task.runAt);
    }
    for (const { lane, count, priority } of fresh.values()) this.wake(lane, { count, priority });
    return results;
  }

  /** Enqueues onto idle sandboxes of the tasks' lane when it has some (see `DispatchLane.enqueueOnIdle`). */
  private async enqueueOntoIdleSandboxes(tasks: NewTask[]): Promise<EnqueueResult[]> {
    const first = tasks.find((task) => task.runAt <= task.createdAt);
    const fn = first && this.functions.peek(first.project, first.functionName);
    if (first === undefined || fn === undefined || this.draining) return this.store.enqueueTasks(tasks);
    const lane = this.laneFor({
      project: first.project,
      functionName: first.functionName,
      revision: first.revision,
    });
    return (await lane.enqueueOnIdle(tasks, fn)) ?? this.store.enqueueTasks(tasks);
  }

  /** See `TaskCancellation.cancel`. */
  cancel(project: string, id: string): Promise<Task | null> {
    return this.cancellation.cancel(project, id);
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
   * A function was deployed, rolled back or changed: forget its cached settings, hand back what its
   * lanes claimed ahead under the old settings, and wake them. `sandboxesStale` (its env or memory
   * changed) also stops its idle sandboxes; busy ones finish their task first and are then replaced.
   */
  functionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void> {
    // Sent before this node's own lanes read the function again: a caller answered once it resolves
    // (a pause, say) finds the other nodes told, not racing the answer.
    const announced = this.options.cluster.announceFunctionChanged(project, name, sandboxesStale);
    this.functionChangedElsewhere(project, name, sandboxesStale);
    return announced;
  }

  /** Another node changed the function: as `functionChanged`, without telling the others again. */
  functionChangedElsewhere(project: string, name: string, sandboxesStale: boolean): void {
    this.functions.forget(project, name);
    if (sandboxesStale) for (const lane of this.pool.lanesOf(project, name)) this.pool.retireIdle(lane);
    void this.keepWarm(project, name).catch((error: unknown) =>
      this.options.logger.error({ err: error }, "keeping sandboxes warm failed"),
    );
    const key = functionKey(project, name);
    for (const lane of this.lanes.values()) {
      if (lane.functionKey !== key) continue;
      this.track(lane.handBackAll().then(() => this.wake(lane.lane)));
    }
  }

  /** The store has (or may have) queued tasks of the lane; `fresh` names tasks just enqueued. */
  wake(lane: Lane, fresh?: { count: number; priority: number }): void {
    if (this.draining) return;
    this.laneFor(lane).wake(fresh);
  }

  /** A sandbox could not start: the next task of the lane fails with the reason, as its attempt would. */
  async failStart(lane: Lane, reason: string): Promise<void> {
    if (this.draining) return;
    await this.laneFor(lane).failNext(reason);
  }

  private laneFor(lane: Lane): DispatchLane {
    const key = laneKey(lane);
    let entry = this.lanes.get(key);
    if (entry === undefined) {
      entry = new DispatchLane(lane, this.laneContext);
      this.lanes.set(key, entry);
    }
    return entry;
  }

  /** Sandboxes on their way for the lane (`SandboxPool.comingCount`), or making way through the waitlist. */
  private capacityComing(lane: Lane): number {
    const dispatchLane = this.lanes.get(laneKey(lane));
    const makingWay = dispatchLane !== undefined && this.waitlist.expectsRoom(dispatchLane);
    return this.pool.comingCount(lane) + (makingWay ? 1 : 0);
  }

  private laneHolding(taskId: string): DispatchLane | undefined {
    for (const lane of this.lanes.values()) if (lane.holds(taskId)) return lane;
    return undefined;
  }

  /** Hands back a task claimed ahead here and not started; false when no lane here holds it. */
  private async releaseUnstarted(taskId: string): Promise<boolean> {
    return (await this.laneHolding(taskId)?.release(taskId)) ?? false;
  }

  /** Local queues none of whose tasks started for `idleMs` go back: another node may run them now. */
  private handBackUnusedQueues(idleMs: number): void {
    const now = Date.now();
    for (const lane of this.lanes.values()) {
      if (lane.waiting > 0 && now - lane.lastActivityMs > idleMs) this.track(lane.handBackAll());
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) =>
      this.reportStoreError("handing back claimed tasks", error),
    );
    this.handingBack.add(tracked);
    void tracked.finally(() => this.handingBack.delete(tracked));
  }

  private stopClaimingOnce(): void {
    if (!this.draining) this.stopClaiming();
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
}
