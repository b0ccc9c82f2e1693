/**
 * Warm sandboxes per lane (function revision), within the node's slot budget. Sandboxes start off the
 * dispatch path; a lane reuses only its own; a sandbox is replaced after `maxTasksPerSandbox` tasks,
 * above its memory ceiling or after a crash, and stopped after `idleMs` without work.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";
import type { Lane } from "../store/store.js";
import { Sandbox } from "./sandbox.js";
import type { SandboxBackend } from "./sandbox-backend.js";
import type { RevisionCache } from "./revision-cache.js";

export interface SandboxPoolOptions {
  backend: SandboxBackend;
  dir: string;
  maxSandboxes: number;
  maxTasksPerSandbox: number;
  idleMs: number;
  maxResultBytes: number;
  maxLogBytes: number;
  revisions: RevisionCache;
  /** A sandbox of `lane` became idle: it can take a task. */
  onIdle: (lane: Lane) => void;
  /** A sandbox of `lane` failed to start; `reason` says why (for example the function's import failed). */
  onStartFailed: (lane: Lane, reason: string) => void;
}

/** What a lane's sandboxes are started with: its revision's spec and its function's settings. */
export interface LaneConfig {
  spec: RevisionSpec;
  settings: FunctionSettings;
}

interface LaneSandboxes {
  lane: Lane;
  sandboxes: Set<Sandbox>;
  idle: Sandbox[];
  starting: number;
}

export function laneKey(lane: Lane): string {
  return `${lane.project}/${lane.functionName}@${lane.revision}`;
}

export class SandboxPool {
  private readonly lanes = new Map<string, LaneSandboxes>();
  private readonly idleTimers = new Map<Sandbox, NodeJS.Timeout>();
  private alive = 0;
  private readonly starting = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly options: SandboxPoolOptions) {}

  /** Kills sandboxes a previous life of this node left behind (after a `kill -9` of the server). */
  async reapOrphans(): Promise<void> {
    const entries = await readdir(this.options.dir).catch(() => []);
    for (const entry of entries) {
      const dir = path.join(this.options.dir, entry);
      const pid = Number(await readFile(path.join(dir, "pid"), "utf8").catch(() => "NaN"));
      if (Number.isInteger(pid) && pid > 0 && (await isHarness(pid))) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  get size(): number {
    return this.alive;
  }

  idleCount(lane: Lane): number {
    return this.lanes.get(laneKey(lane))?.idle.length ?? 0;
  }

  startingCount(lane: Lane): number {
    return this.lanes.get(laneKey(lane))?.starting ?? 0;
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

  /** Starts one more sandbox for the lane if a slot is free or an idle sandbox of another lane can go. */
  grow(lane: Lane, fn: LaneConfig): boolean {
    if (this.closed) return false;
    if (this.alive >= this.options.maxSandboxes && !this.evictIdleElsewhere(lane)) return false;
    const entry = this.laneEntry(lane);
    entry.starting += 1;
    this.alive += 1;
    const starting = this.start(lane, fn, entry);
    this.starting.add(starting);
    void starting.finally(() => this.starting.delete(starting));
    return true;
  }

  /** Gives a sandbox back after a task; it is replaced instead when it should not run another. */
  release(sandbox: Sandbox, memoryMb: number): void {
    const worn =
      !sandbox.reusable ||
      sandbox.tasksRun >= this.options.maxTasksPerSandbox ||
      sandbox.lastRssBytes > memoryMb * 1024 * 1024;
    if (sandbox.state !== "idle" || worn || this.closed) {
      sandbox.kill();
      return;
    }
    const entry = this.laneEntry(sandbox.lane);
    entry.idle.push(sandbox);
    this.idleTimers.set(sandbox, setTimeout(() => this.retire(sandbox), this.options.idleMs).unref());
    this.options.onIdle(sandbox.lane);
  }

  /** The lanes of a function that have sandboxes on this node. */
  lanesOf(project: string, functionName: string): Lane[] {
    return [...this.lanes.values()]
      .map((entry) => entry.lane)
      .filter((lane) => lane.project === project && lane.functionName === functionName);
  }

  /** Stops every sandbox of a lane that is not running a task (after a redeploy or settings change). */
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

  private async start(lane: Lane, fn: LaneConfig, entry: LaneSandboxes): Promise<void> {
    const id = `${lane.functionName}-${randomBytes(4).toString("hex")}`;
    const dir = path.join(this.options.dir, id);
    let sandbox: Sandbox | null = null;
    try {
      await mkdir(dir, { recursive: true });
      const started = await this.options.backend.start({
        id,
        runtime: fn.spec.runtime,
        codeDir: await this.options.revisions.codeDir(lane.revision),
        entry: fn.spec.entry,
        memoryMb: fn.settings.memoryMb,
        env: fn.settings.env,
        workDir: dir,
        maxResultBytes: this.options.maxResultBytes,
        maxLogBytes: this.options.maxLogBytes,
      });
      sandbox = new Sandbox(
        { id, lane, maxResultBytes: this.options.maxResultBytes, maxLogBytes: this.options.maxLogBytes },
        started,
      );
      entry.sandboxes.add(sandbox);
      if (this.closed) throw new Error("the pool closed while the sandbox started");
      const current = sandbox;
      void current.exited.then(() => this.forget(current, entry, dir));
      await writeFile(path.join(dir, "pid"), String(started.child.pid));
      await sandbox.ready;
      entry.starting -= 1;
      this.release(sandbox, fn.settings.memoryMb);
    } catch (error) {
      entry.starting -= 1;
      if (sandbox === null) {
        this.alive -= 1;
        await rm(dir, { recursive: true, force: true });
      } else {
        sandbox.kill();
      }
      if (!this.closed)
        this.options.onStartFailed(lane, error instanceof Error ? error.message : String(error));
    }
  }

  private forget(sandbox: Sandbox, entry: LaneSandboxes, dir: string): void {
    entry.sandboxes.delete(sandbox);
    entry.idle = entry.idle.filter((other) => other !== sandbox);
    clearTimeout(this.idleTimers.get(sandbox));
    this.idleTimers.delete(sandbox);
    this.alive -= 1;
    void rm(dir, { recursive: true, force: true });
  }

  private retire(sandbox: Sandbox): void {
    const entry = this.lanes.get(laneKey(sandbox.lane));
    if (entry !== undefined) entry.idle = entry.idle.filter((other) => other !== sandbox);
    sandbox.kill();
  }

  /** Frees a slot by stopping the longest-idle sandbox of another lane. */
  private evictIdleElsewhere(lane: Lane): boolean {
    const key = laneKey(lane);
    for (const [otherKey, entry] of this.lanes) {
      const victim = otherKey === key ? undefined : entry.idle[0];
      if (victim !== undefined) {
        this.retire(victim);
        // The victim's slot is counted free now; its process is already being killed.
        this.alive -= 1;
        victim.exited.then(() => (this.alive += 1)).catch(() => {});
        return true;
      }
    }
    return false;
  }

  private laneEntry(lane: Lane): LaneSandboxes {
    const key = laneKey(lane);
    let entry = this.lanes.get(key);
    if (entry === undefined) {
      entry = { lane, sandboxes: new Set(), idle: [], starting: 0 };
      this.lanes.set(key, entry);
    }
    return entry;
  }
}

async function isHarness(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.includes("harness.js");
}
