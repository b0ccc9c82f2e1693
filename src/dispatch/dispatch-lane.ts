/**
 * A lane at work on this node: its local queue of tasks claimed ahead and the sandboxes that serve it.
 * A sandbox that finishes a task takes the next one from the local queue in the same turn, with no
 * store call; the lane refills the queue in batches before it runs dry (sized to its sandboxes and its
 * observed start rate), grows its sandboxes while it has a backlog, and hands back what it holds when
 * told to (a stop, a change of its function, a queue left unused).
 */
import type { RevisionSpec } from "../domain/function-settings.js";
import { functionKey, laneKey, type Lane } from "../domain/lane.js";
import type { LaneConfig, SandboxPool } from "../runner/sandbox-pool.js";
import type { Sandbox } from "../runner/sandbox.js";
import type { ClaimedTask, EnqueueResult, NewTask, Store } from "../store/store.js";
import type { AttemptLifecycle } from "./attempt-lifecycle.js";
import type { CachedFunction, FunctionCache } from "./function-cache.js";
import type { FunctionSlots } from "./function-slots.js";
import { LocalQueue, oldestFirstEvery } from "./local-queue.js";
import type { RoomWaitlist } from "./room-waitlist.js";

export interface LaneContext {
  store: Store;
  pool: SandboxPool;
  functions: FunctionCache;
  slots: FunctionSlots;
  attempts: AttemptLifecycle;
  waitlist: RoomWaitlist<DispatchLane>;
  laneConfig(fn: CachedFunction, spec: RevisionSpec): LaneConfig;
  /** Sandboxes a lane may be starting at once while it has a backlog. */
  maxStartingPerLane: number;
  /** No claims, no starts: a graceful stop began. */
  isDraining(): boolean;
  reportError(doing: string, error: unknown): void;
}

/** The most tasks a lane claims ahead. */
export const maxLocalQueue = 500;
/** A lane claims ahead what its sandboxes start in this long at their observed rate. */
const claimAheadMs = 100;
/** Starts are counted over this window to estimate the lane's rate. */
const rateWindowMs = 1000;

export class DispatchLane {
  readonly key: string;
  readonly functionKey: string;
  private readonly queue = new LocalQueue();
  private refilling = false;
  private refillAgain = false;
  /** The store may hold queued tasks of the lane (false after a claim that came back short). */
  private backlog = true;
  /** Tasks of a higher class than the local queue holds, just enqueued: claimed beyond the target. */
  private urgent = { count: 0, priority: -1 };
  /** Tasks claimed so far, for the one-in-five-oldest share of each claim. */
  private claimed = 0;
  private windowStartMs = Date.now();
  private startsInWindow = 0;
  private lastWindowRate = 0;
  /** The last start or claim: a local queue unused for long is handed back. */
  lastActivityMs = Date.now();

  constructor(
    readonly lane: Lane,
    private readonly context: LaneContext,
  ) {
    this.key = laneKey(lane);
    this.functionKey = functionKey(lane.project, lane.functionName);
  }

  /** Tasks claimed ahead, waiting for a sandbox. */
  get waiting(): number {
    return this.queue.size;
  }

  heldTaskIds(): string[] {
    return this.queue.ids();
  }

  /** The highest priority waiting here; -1 when none waits. */
  topPriority(): number {
    return this.queue.topPriority();
  }

  holds(taskId: string): boolean {
    return this.queue.has(taskId);
  }

  /**
   * The store has (or may have) queued tasks for the lane. `fresh` names tasks just enqueued: when they
   * are of a higher class than what the local queue holds, they are claimed at once, beyond its target.
   */
  wake(fresh?: { count: number; priority: number }): void {
    this.backlog = true;
    if (fresh !== undefined && this.queue.size > 0 && fresh.priority > this.queue.lowestPriority()) {
      this.urgent = {
        count: Math.min(maxLocalQueue, this.urgent.count + fresh.count),
        priority: Math.max(this.urgent.priority, fresh.priority),
      };
    }
    void this.refill();
    this.pump();
  }

  /**
   * An end of the lane is committed: its function's slot is free in the store too. A claim that came
   * back short for lack of room may find tasks now, and the queue is refilled if it is low (not while
   * the node drains: `pump` does nothing then).
   */
  endRecorded(): void {
    this.backlog = true;
    this.pump();
  }

  /** Starts waiting tasks on idle sandboxes, refills the queue, and grows while a backlog remains. */
  pump(): void {
    if (this.context.isDraining()) return;
    const { pool, functions } = this.context;
    const fn = functions.peek(this.lane.project, this.lane.functionName);
    if (fn === undefined || fn.settings.paused || !fn.specs.has(this.lane.revision)) {
      if (this.queue.size > 0 || this.backlog) void this.refill(); // reads the function
      return;
    }
    for (let sandbox; this.queue.size > 0 && (sandbox = pool.takeIdle(this.lane)) !== null;) {
      this.run(this.queue.next() as ClaimedTask, sandbox, fn);
    }
    if (this.queue.size <= this.lowWater()) void this.refill();
    this.grow(fn);
  }

  /**
   * Enqueues tasks of this lane and, in the same commit, claims them onto its idle sandboxes (within
   * the function's room), so a task that can start at once costs one commit; null (nothing done) when
   * no sandbox is idle. A sync invoke's commit does not wait for an fsync (README, "Synchronous invoke").
   */
  async enqueueOnIdle(tasks: NewTask[], fn: CachedFunction): Promise<EnqueueResult[] | null> {
    const { pool, slots, store } = this.context;
    // Tasks claimed ahead go first: an idle sandbox beside a non-empty local queue is a passing state.
    if (fn.settings.paused || !fn.specs.has(this.lane.revision) || this.queue.size > 0) return null;
    const limit = Math.min(tasks.length, slots.roomFor(this.functionKey, fn.settings.maxConcurrency));
    const sandboxes: Sandbox[] = [];
    for (let sandbox; sandboxes.length < limit && (sandbox = pool.takeIdle(this.lane)) !== null;) {
      sandboxes.push(sandbox);
    }
    if (sandboxes.length === 0) return null;
    slots.take(this.functionKey, sandboxes.length);
    let started = 0;
    try {
      const { results } = await store.enqueueAndClaimTasks(tasks, {
        lane: this.lane,
        limit: sandboxes.length,
        now: new Date(),
        maxConcurrency: fn.settings.maxConcurrency,
        // Its caller waits and retries on failure: a sync invoke need not wait for an fsync.
        durable: !tasks.every((task) => task.awaited === true),
        // Committed: they start while the commit is made durable.
        onClaimed: (claimed) => {
          claimed.forEach((task, index) => this.run(task, sandboxes[index] as Sandbox, fn));
          started = claimed.length;
        },
      });
      return results;
    } finally {
      slots.give(this.functionKey, sandboxes.length - started);
      sandboxes.slice(started).forEach((sandbox) => pool.putBack(sandbox));
    }
  }

  /** Takes a task that waits here out and hands it back to the store (queued again); false if not here. */
  async release(taskId: string): Promise<boolean> {
    const task = this.queue.remove(taskId);
    if (task === undefined) return false;
    await this.handBack([task]);
    return true;
  }

  /** Hands back every task waiting here (queued again in the store, neither charged nor `lost`). */
  async handBackAll(): Promise<void> {
    await this.handBack(this.queue.removeAll());
  }

  /** Empties the local queue without the store: what a stopping node hands back with its running tasks. */
  takeAll(): ClaimedTask[] {
    const tasks = this.queue.removeAll();
    this.context.slots.give(this.functionKey, tasks.length);
    return tasks;
  }

  /** A sandbox of the lane could not start: its next task ends `crashed` with the reason, as its attempt would. */
  async failNext(reason: string): Promise<void> {
    const fn = await this.context.functions.get(this.lane);
    if (fn === null || this.context.isDraining()) return;
    let task = this.queue.next();
    if (task === undefined) [task] = await this.context.store.claimTasks(this.lane, 1, new Date());
    else this.context.slots.give(this.functionKey, 1);
    if (task !== undefined) await this.context.attempts.failUnstarted(task, fn.settings, reason);
  }

  private run(task: ClaimedTask, sandbox: Sandbox, fn: CachedFunction): void {
    this.countStart();
    this.context.attempts.start(task, sandbox, fn.settings, (freed) => this.sandboxFreed(freed));
  }

  /** The sandbox is done with its task: it takes the next one at once, or makes room, or waits idle. */
  private sandboxFreed(sandbox: Sandbox): void {
    const { pool, slots, waitlist, functions } = this.context;
    slots.give(this.functionKey, 1);
    if (!pool.reuse(sandbox)) {
      this.pump(); // a replacement, if a backlog waits
      return;
    }
    if (waitlist.yieldsRoom(this, this.queue.topPriority())) {
      // Another function waits with a higher class and the node is full: its sandbox starts in this room.
      pool.retire(sandbox);
      return;
    }
    const fn = functions.peek(this.lane.project, this.lane.functionName);
    if (this.queue.size === 0 || fn === undefined || fn.settings.paused || this.context.isDraining()) {
      pool.putBack(sandbox);
      this.pump();
      return;
    }
    this.run(this.queue.next() as ClaimedTask, sandbox, fn);
    if (this.queue.size <= this.lowWater()) void this.refill();
  }

  /** More sandboxes while tasks wait and none is idle; waits for room on the node when there is none. */
  private grow(fn: CachedFunction): void {
    const { pool, waitlist } = this.context;
    const spec = fn.specs.get(this.lane.revision);
    const starting = pool.startingCount(this.lane);
    const lacking = this.queue.size - starting;
    if (spec === undefined || lacking <= 0 || pool.idleCount(this.lane) > 0) {
      waitlist.leave(this);
      return;
    }
    // No more sandboxes than the function may use at once (a limited function's sandboxes are all busy
    // only when its limit is reached: then a task claimed ahead waits for one of them).
    const { maxConcurrency } = fn.settings;
    const usable = maxConcurrency > 0 ? maxConcurrency - pool.sandboxCount(this.lane) : Infinity;
    let wanted = Math.min(lacking, this.context.maxStartingPerLane - starting, usable);
    const config = this.context.laneConfig(fn, spec);
    while (wanted > 0 && pool.grow(this.lane, config)) wanted -= 1;
    // Refused for lack of room (not for the cap on starts): wait for a sandbox of another lane.
    if (wanted > 0) waitlist.wait(this, Math.min(lacking, usable));
    else waitlist.leave(this);
  }

  /** Claims a batch ahead of need; one claim at a time per lane. */
  private async refill(): Promise<void> {
    if (this.refilling) {
      this.refillAgain = true;
      return;
    }
    if ((!this.backlog && this.urgent.count === 0) || this.context.isDraining()) return;
    this.refilling = true;
    let claimed = 0;
    try {
      do {
        this.refillAgain = false;
        claimed += await this.claimBatch();
        // Asked again while the claim was in flight: only a queue that is low again (or urgent tasks)
        // is worth another claim; topping up a few tasks at a time costs a claim per few tasks.
      } while (
        this.refillAgain &&
        ((this.backlog && this.queue.size <= this.lowWater()) || this.urgent.count > 0) &&
        !this.context.isDraining()
      );
    } catch (error) {
      this.context.reportError("claiming tasks", error);
    } finally {
      this.refilling = false;
    }
    // A stop that began while the claim was in flight finds these tasks here: they go back at once.
    if (this.context.isDraining()) await this.handBackAll();
    // Only after a claim that brought tasks: `pump` refills again, and a claim that found no room or
    // no task must not turn into a loop of promises that never yields to the event loop.
    else if (claimed > 0) this.pump();
  }

  /** Claims what the lane's target depth and its function's room allow; resolves with how many. */
  private async claimBatch(): Promise<number> {
    const { functions, pool, slots, store } = this.context;
    const fn = await functions.get(this.lane);
    if (fn === null) {
      this.backlog = false; // the function is gone
      return 0;
    }
    const spec = fn.specs.get(this.lane.revision);
    if (spec === undefined || fn.settings.paused) return 0;
    // A node that can never start a sandbox of the lane (one that runs no tasks, say) claims nothing:
    // what it held would wait for the idle sweep while other nodes could run it at once.
    if (!pool.canEverRun(this.context.laneConfig(fn, spec))) return 0;
    const { maxConcurrency } = fn.settings;
    const urgent = this.urgent;
    this.urgent = { count: 0, priority: -1 };
    let room = slots.roomFor(this.functionKey, maxConcurrency);
    if (urgent.count > room) {
      // The function's limit is taken by tasks of a lower class waiting here: they make way.
      await this.handBack(this.queue.removeBelow(urgent.priority, urgent.count - room));
      room = slots.roomFor(this.functionKey, maxConcurrency);
    }
    let wanted = this.backlog ? Math.max(this.targetDepth() - this.queue.size, urgent.count) : urgent.count;
    if (maxConcurrency > 0) {
      // A limited function's claims hold its slots on every node: claim ahead only what this node can
      // start now, so no task waits here while another node has a sandbox free for it.
      const startable = pool.idleCount(this.lane) + pool.startingCount(this.lane) - this.queue.size;
      const growable = pool.hasRoomFor(this.context.laneConfig(fn, spec))
        ? this.context.maxStartingPerLane
        : 0;
      wanted = Math.max(urgent.count, Math.min(wanted, startable + growable));
    }
    const limit = Math.min(wanted, room);
    if (limit <= 0) return 0;
    slots.take(this.functionKey, limit);
    let claimed = 0;
    try {
      const oldest = this.oldestShare(limit);
      const now = new Date();
      if (oldest > 0) {
        const tasks = await store.claimTasks(this.lane, oldest, now, { order: "oldest", maxConcurrency });
        this.queue.add(tasks, "oldest");
        claimed += tasks.length;
      }
      if (limit > oldest) {
        const tasks = await store.claimTasks(this.lane, limit - oldest, now, { maxConcurrency });
        this.queue.add(tasks, "priority");
        claimed += tasks.length;
      }
    } finally {
      slots.give(this.functionKey, limit - claimed);
    }
    this.backlog = claimed === limit;
    if (claimed > 0) this.lastActivityMs = Date.now();
    return claimed;
  }

  private async handBack(tasks: ClaimedTask[]): Promise<void> {
    if (tasks.length === 0) return;
    try {
      await this.context.store.handBackTasks(
        tasks.map((task) => ({ taskId: task.id, attempt: task.attempt })),
      );
      this.context.slots.give(this.functionKey, tasks.length);
      this.backlog = true;
    } catch (error) {
      // Still claimed in the store: they stay here and run (or go back with the node's next stop).
      this.context.reportError("handing back claimed tasks", error);
      this.queue.add(tasks, "priority");
    }
  }

  /**
   * How many tasks the lane keeps claimed ahead: one per sandbox (and per sandbox it may start) at least, and what its sandboxes start
   * in `claimAheadMs` at the rate observed over the last second, up to `maxLocalQueue`.
   */
  private targetDepth(): number {
    const sandboxes = Math.max(1, this.context.pool.sandboxCount(this.lane));
    const sinceWindowMs = Date.now() - this.windowStartMs;
    const perSecond =
      sinceWindowMs > 2 * rateWindowMs ? 0 : Math.max(this.lastWindowRate, this.startsInWindow);
    // A few more than its sandboxes: a lane with a backlog holds work for the sandboxes it grows.
    const ahead = sandboxes + this.context.maxStartingPerLane;
    return Math.min(maxLocalQueue, Math.max(ahead, Math.ceil((perSecond * claimAheadMs) / 1000)));
  }

  private lowWater(): number {
    return Math.floor(this.targetDepth() / 2);
  }

  private countStart(): void {
    const now = Date.now();
    if (now - this.windowStartMs >= rateWindowMs) {
      this.lastWindowRate = now - this.windowStartMs < 2 * rateWindowMs ? this.startsInWindow : 0;
      this.startsInWindow = 0;
      this.windowStartMs = now;
    }
    this.startsInWindow += 1;
    this.lastActivityMs = now;
  }

  /** How many of the next `count` claimed tasks are claimed oldest-first: one in `oldestFirstEvery`. */
  private oldestShare(count: number): number {
    const before = this.claimed;
    this.claimed += count;
    return Math.floor(this.claimed / oldestFirstEvery) - Math.floor(before / oldestFirstEvery);
  }
}
