/**
 * Warm sandboxes per lane (function revision), within the node's memory budget and sandbox count.
 * Sandboxes start off the dispatch path and each reserves its memory tier while it lives, so the pools
 * never overcommit the node; sandboxes of long-running functions may hold only a share of the budget,
 * so they cannot starve short ones. A lane reuses only its own sandboxes (or none: single-use); a
 * sandbox is replaced after `maxTasksPerSandbox` tasks, above its tier, after a crash or a dirty task,
 * and stopped after `idleMs` without work unless its function keeps `minWarm` ready.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";
import { laneKey, type Lane } from "../domain/lane.js";
import { Sandbox } from "./sandbox.js";
import type { SandboxBackend } from "./sandbox-backend.js";
import type { RevisionCache } from "./revision-cache.js";

export interface SandboxPoolOptions {
  backend: SandboxBackend;
  dir: string;
  maxSandboxes: number;
  /** Memory all sandboxes of this node may reserve together. */
  memoryBudgetMb: number;
  /** The share of the budget sandboxes of long-running functions may reserve (0..1). */
  longShare: number;
  maxTasksPerSandbox: number;
  idleMs: number;
  maxResultBytes: number;
  maxLogBytes: number;
  revisions: Pick<RevisionCache, "codeDir">;
  /** A sandbox of `lane` became idle: it can take a task. */
  onIdle: (lane: Lane) => void;
  /** A sandbox exited and gave back its reservation: lanes waiting for room may grow now. */
  onRoomFreed: () => void;
  /** A sandbox of `lane` failed to start; `reason` says why (for example the function's import failed). */
  onStartFailed: (lane: Lane, reason: string) => void;
}

/** What a lane's sandboxes are started with. */
export interface LaneConfig {
  spec: RevisionSpec;
  settings: FunctionSettings;
  /** The memory tier the sandboxes reserve (and are limited to). */
  tierMb: number;
  /** The function's tasks may run long: its sandboxes count against the long share. */
  long: boolean;
}

interface LaneSandboxes {
  lane: Lane;
  config: LaneConfig;
  sandboxes: Set<Sandbox>;
  idle: Sandbox[];
  starting: number;
}

export class SandboxPool {
  private readonly lanes = new Map<string, LaneSandboxes>();
  private readonly idleTimers = new Map<Sandbox, NodeJS.Timeout>();
  private readonly starting = new Set<Promise<void>>();
  private count = 0;
  private reservedMb = 0;
  private reservedLongMb = 0;
  private closed = false;

  constructor(private readonly options: SandboxPoolOptions) {}

  /** Kills sandboxes a previous life of this node left behind (after a `kill -9` of the server). */
  async reapOrphans(): Promise<void> {
    await this.options.backend.removeLeftovers();
    const entries = await readdir(this.options.dir).catch(() => []);
    for (const entry of entries) {
      const dir = path.join(this.options.dir, entry);
      const pid = Number(await readFile(path.join(dir, "pid"), "utf8").catch(() => "NaN"));
      if (Number.isInteger(pid) && pid > 0 && (await isSandbox(pid))) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Sandboxes alive or starting, and the memory they reserve. */
  get usage(): { sandboxes: number; reservedMb: number; reservedLongMb: number } {
    return { sandboxes: this.count, reservedMb: this.reservedMb, reservedLongMb: this.reservedLongMb };
  }

  idleCount(lane: Lane): number {
    return this.lanes.get(laneKey(lane))?.idle.length ?? 0;
  }

  startingCount(lane: Lane): number {
    return this.lanes.get(laneKey(lane))?.starting ?? 0;
  }

  /**
   * Sandboxes of the lane on their way: those starting, or one for a lane with none yet on a node that
   * runs sandboxes (a cold start: the dispatch that grows it may not have run yet).
   */
  comingCount(lane: Lane): number {
    const entry = this.lanes.get(laneKey(lane));
    if (this.closed || this.options.maxSandboxes <= 0) return entry?.starting ?? 0; // none will come
    return entry === undefined || entry.sandboxes.size + entry.starting === 0 ? 1 : entry.starting;
  }

  /** An idle sandbox of the lane, now reserved for one task; null when none is idle. */
  takeIdle(lane: Lane): Sandbox | null {
    const sandbox = this.lanes.get(laneKey(lane))?.idle.pop() ?? null;
    if (sandbox !== null) {
      clearTimeout(this.idleTimers.get(sandbox));
      this.idleTimers.delete(sandbox);
    }
    return sandbox;
  }

  /**
   * Starts one more sandbox for the lane if the node has room for its tier — making room by stopping
   * an idle sandbox of another lane if needed (the room comes back when it has exited: `onRoomFreed`).
   */
  grow(lane: Lane, config: LaneConfig): boolean {
    if (this.closed) return false;
    const entry = this.laneEntry(lane, config);
    if (!this.hasRoom(config)) {
      this.stopIdleElsewhere(lane);
      return false;
    }
    this.reserve(config, 1);
    entry.starting += 1;
    const starting = this.start(entry);
    this.starting.add(starting);
    const forgetStart = () => this.starting.delete(starting);
    starting.then(forgetStart, forgetStart);
    return true;
  }

  /** Starts sandboxes until the lane has `minWarm` (a function that asked to be kept warm). */
  keepWarm(lane: Lane, config: LaneConfig): void {
    const entry = this.laneEntry(lane, config);
    while (entry.sandboxes.size + entry.starting < config.settings.minWarm && this.grow(lane, config));
  }

  /** Gives a sandbox back after a task; it is replaced instead when it should not run another. */
  release(sandbox: Sandbox): void {
    if (!this.reuse(sandbox)) return;
    this.putBack(sandbox);
    this.options.onIdle(sandbox.lane);
  }

  /**
   * After a task: true when the sandbox may run another, which its lane then gives it directly (it stays
   * taken); otherwise it is stopped (and a single-use function's next sandbox is started ahead).
   */
  reuse(sandbox: Sandbox): boolean {
    const entry = this.lanes.get(laneKey(sandbox.lane));
    if (entry === undefined || this.closed) {
      sandbox.kill();
      return false;
    }
    const { settings, tierMb } = entry.config;
    const worn =
      (settings.singleUse && sandbox.tasksRun > 0) ||
      !sandbox.reusable ||
      sandbox.tasksRun >= this.options.maxTasksPerSandbox ||
      sandbox.lastRssBytes > tierMb * 1024 * 1024;
    if (sandbox.state !== "idle" || worn) {
      sandbox.kill();
      // A single-use function still finds its next sandbox started ahead of time.
      if (settings.singleUse) this.grow(sandbox.lane, entry.config);
      return false;
    }
    return true;
  }

  /** Sandboxes of the lane alive or starting. */
  sandboxCount(lane: Lane): number {
    const entry = this.lanes.get(laneKey(lane));
    return entry === undefined ? 0 : entry.sandboxes.size + entry.starting;
  }

  /** Whether a sandbox for the lane could start now without stopping another. */
  hasRoomFor(config: LaneConfig): boolean {
    return !this.closed && this.hasRoom(config);
  }

  /**
   * Whether this node could ever run a sandbox of the lane: false when it runs no sandboxes at all
   * (`--max-workers 0`) or the lane's tier does not fit its budget (or the long share of it) even empty.
   */
  canEverRun(config: LaneConfig): boolean {
    const { maxSandboxes, memoryBudgetMb, longShare } = this.options;
    if (this.closed || maxSandboxes <= 0 || config.tierMb > memoryBudgetMb) return false;
    return !config.long || config.tierMb <= memoryBudgetMb * longShare;
  }

  /** Makes a sandbox taken with `takeIdle` idle again without waking its lane (no task came for it). */
  putBack(sandbox: Sandbox): void {
    const entry = this.lanes.get(laneKey(sandbox.lane));
    // It may have died while it was taken.
    if (entry === undefined || this.closed || sandbox.state !== "idle") {
      sandbox.kill();
      return;
    }
    entry.idle.push(sandbox);
    this.idleTimers.set(sandbox, setTimeout(() => this.retireIfCold(sandbox), this.options.idleMs).unref());
  }

  /** The lanes of a function that have sandboxes on this node. */
  lanesOf(project: string, functionName: string): Lane[] {
    return [...this.lanes.values()]
      .map((entry) => entry.lane)
      .filter((lane) => lane.project === project && lane.functionName === functionName);
  }

  /** Stops every sandbox of a lane that is not running a task (its function's settings changed). */
  retireIdle(lane: Lane): void {
    for (const sandbox of [...(this.lanes.get(laneKey(lane))?.idle ?? [])]) this.retire(sandbox);
  }

  async close(): Promise<void> {
    this.closed = true;
    // A sandbox still starting is killed by `start` itself once it sees the pool closed.
    await Promise.all([...this.starting]);
    const all = [...this.lanes.values()].flatMap((entry) => [...entry.sandboxes]);
    all.forEach((sandbox) => sandbox.kill());
    await Promise.all(all.map((sandbox) => sandbox.exited));
    this.idleTimers.forEach((timer) => clearTimeout(timer));
  }

  private hasRoom(config: LaneConfig): boolean {
    const { maxSandboxes, memoryBudgetMb, longShare } = this.options;
    if (this.count >= maxSandboxes || this.reservedMb + config.tierMb > memoryBudgetMb) return false;
    return !config.long || this.reservedLongMb + config.tierMb <= memoryBudgetMb * longShare;
  }

  private reserve(config: LaneConfig, sign: 1 | -1): void {
    this.count += sign;
    this.reservedMb += sign * config.tierMb;
    if (config.long) this.reservedLongMb += sign * config.tierMb;
  }

  private async start(entry: LaneSandboxes): Promise<void> {
    const { lane, config } = entry;
    const id = `${lane.functionName}-${randomBytes(4).toString("hex")}`;
    const dir = path.join(this.options.dir, id);
    let sandbox: Sandbox | null = null;
    try {
      await mkdir(dir, { recursive: true });
      const started = await this.options.backend.start({
        id,
        runtime: config.spec.runtime,
        codeDir: await this.options.revisions.codeDir(lane.revision),
        entry: config.spec.entry,
        memoryMb: config.tierMb,
        env: config.settings.env,
        workDir: dir,
        maxResultBytes: this.options.maxResultBytes,
        maxLogBytes: this.options.maxLogBytes,
      });
      sandbox = new Sandbox(
        { id, lane, maxResultBytes: this.options.maxResultBytes, maxLogBytes: this.options.maxLogBytes },
        started,
      );
      entry.sandboxes.add(sandbox);
      const current = sandbox;
      // `exited` never rejects.
      void current.exited.then(() => this.forget(current, entry, dir, config));
      if (this.closed) throw new Error("the pool closed while the sandbox started");
      await writeFile(path.join(dir, "pid"), String(started.pid));
      await sandbox.ready;
      entry.starting -= 1;
      this.release(sandbox);
    } catch (error) {
      entry.starting -= 1;
      if (sandbox === null) {
        this.reserve(config, -1);
        await removeWorkDir(dir);
      } else {
        sandbox.kill();
      }
      if (!this.closed)
        this.options.onStartFailed(lane, error instanceof Error ? error.message : String(error));
    }
  }

  /** The sandbox has exited: it gives back the reservation it was started with. */
  private forget(sandbox: Sandbox, entry: LaneSandboxes, dir: string, config: LaneConfig): void {
    entry.sandboxes.delete(sandbox);
    entry.idle = entry.idle.filter((other) => other !== sandbox);
    clearTimeout(this.idleTimers.get(sandbox));
    this.idleTimers.delete(sandbox);
    this.reserve(config, -1);
    void removeWorkDir(dir);
    if (!this.closed) this.options.onRoomFreed();
  }

  /** The idle timer fired: stop the sandbox unless its function keeps that many warm. */
  private retireIfCold(sandbox: Sandbox): void {
    const entry = this.lanes.get(laneKey(sandbox.lane));
    if (entry !== undefined && entry.sandboxes.size <= entry.config.settings.minWarm) {
      this.idleTimers.set(sandbox, setTimeout(() => this.retireIfCold(sandbox), this.options.idleMs).unref());
      return;
    }
    this.retire(sandbox);
  }

  /** Stops a sandbox that is not running a task (idle, or taken and not given one). */
  retire(sandbox: Sandbox): void {
    const entry = this.lanes.get(laneKey(sandbox.lane));
    if (entry !== undefined) entry.idle = entry.idle.filter((other) => other !== sandbox);
    clearTimeout(this.idleTimers.get(sandbox));
    this.idleTimers.delete(sandbox);
    sandbox.kill();
  }

  /** Makes room by stopping the longest-idle sandbox of another lane that is not kept warm. */
  private stopIdleElsewhere(lane: Lane): void {
    const key = laneKey(lane);
    for (const [otherKey, entry] of this.lanes) {
      if (otherKey === key || entry.sandboxes.size <= entry.config.settings.minWarm) continue;
      const victim = entry.idle[0];
      if (victim !== undefined) {
        this.retire(victim);
        return;
      }
    }
  }

  private laneEntry(lane: Lane, config: LaneConfig): LaneSandboxes {
    const key = laneKey(lane);
    let entry = this.lanes.get(key);
    if (entry === undefined) {
      entry = { lane, config, sandboxes: new Set(), idle: [], starting: 0 };
      this.lanes.set(key, entry);
    }
    // Sandboxes started from now on use the newest settings (those running keep what they started with).
    entry.config = config;
    return entry;
  }
}

/** A pid file may outlive its process: only kill it if it is still one of ours. */
async function isSandbox(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("harness.js");
}

/** A work directory that cannot be removed now is removed by `reapOrphans` at the node's next start. */
async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}
