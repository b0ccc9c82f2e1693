/**
 * Cgroup driver for cgroup v1 and hybrid hosts (Kiln's CI machine kind): one directory per sandbox in each
 * v1 hierarchy (memory, pids, cpu, freezer), plus a twin on the host's cgroup2 mount when that mount offers
 * `cgroup.kill`, as hybrid systemd hosts do at `/sys/fs/cgroup/unified`.
 *
 * Kill switch. Both candidates were measured on this machine kind (research/sandbox.md §4c): `cgroup.kill`
 * on the cgroup2 twin and freezer → SIGKILL every pid → thaw each left 0 of 7 descendants alive, including
 * `setsid` ones (6 ms and 11 ms). `cgroup.kill` is preferred: one write, and the kernel itself walks the
 * cgroup and also kills any process forked while it does, whereas the freezer sweep needs a user-space pid
 * list, can hang in FREEZING, and takes three writes. The freezer sweep remains the fallback: on hosts
 * without a cgroup2 mount, and for any process found in a v1 hierarchy but not in the twin (e.g. after an
 * `addProcess` that failed half-way).
 */
import { join } from "node:path";
import {
  assertValidCgroupName,
  cpuPeriodUs,
  validateCgroupLimits,
  type Cgroup,
  type CgroupDriver,
  type CgroupLimits,
  listChildDirs,
} from "./cgroup-driver.js";
import {
  errorCode,
  kernelCgroupFs,
  readKeyedNumber,
  readProcs,
  removeCgroupDir,
  type CgroupFs,
} from "./cgroup-fs.js";
import { pollUntil } from "./poll-until.js";

/** Kiln's parent cgroup in each v1 hierarchy, e.g. memory: `/sys/fs/cgroup/memory/<own cgroup>/kiln`. */
export interface CgroupV1ParentDirs {
  memory: string;
  pids: string;
  /** Without it, `create` rejects limits with `cpuCores`. */
  cpu?: string;
  /** Without it, the kill switch is `cgroup.kill` on the cgroup2 twin alone. */
  freezer?: string;
}

export interface CgroupV1DriverOptions {
  /** Created on first use; their own parents must exist. */
  parentDirs: CgroupV1ParentDirs;
  /**
   * Kiln's parent cgroup on the host's cgroup2 mount (hybrid hosts: `/sys/fs/cgroup/unified/<own>/kiln`),
   * used for `cgroup.kill` when the kernel offers it there. Null or absent: freezer only.
   */
  unifiedParentDir?: string | null;
  /** How long `killAll` waits for the cgroup to empty before it rejects. Default 2000 ms. */
  killTimeoutMs?: number;
  /** How often `killAll` checks whether the cgroup is empty. Default 2 ms. */
  pollIntervalMs?: number;
  /** Default: the real cgroup filesystems. */
  fs?: CgroupFs;
}

export type CgroupV1KillMethod = "cgroup.kill" | "freezer";

/** The directories of one cgroup, one per hierarchy it lives in. */
export interface CgroupV1Dirs {
  memory: string;
  pids: string;
  cpu?: string;
  freezer?: string;
  /** The twin on the cgroup2 mount that offers `cgroup.kill`. */
  unified?: string;
}

/** How long `killAll` trusts `cgroup.kill` alone before it sweeps the v1 hierarchies with the freezer. */
const cgroupKillGraceMs = 250;
/** How long one freezer sweep waits for FREEZING to settle into FROZEN before it kills anyway. */
const freezeSettleMs = 100;
const removeTimeoutMs = 1000;

export class CgroupV1Driver implements CgroupDriver {
  readonly version = "v1";
  readonly parentDirs: Readonly<CgroupV1ParentDirs>;
  readonly unifiedParentDir: string | null;
  private readonly fs: CgroupFs;
  private readonly killTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private parentsReady: Promise<{ killMethod: CgroupV1KillMethod }> | null = null;

  constructor(options: CgroupV1DriverOptions) {
    this.parentDirs = { ...options.parentDirs };
    this.unifiedParentDir = options.unifiedParentDir ?? null;
    if (this.parentDirs.freezer === undefined && this.unifiedParentDir === null) {
      throw new Error("a cgroup v1 driver needs a kill switch: a freezer hierarchy or a cgroup2 mount");
    }
    this.fs = options.fs ?? kernelCgroupFs;
    this.killTimeoutMs = options.killTimeoutMs ?? 2000;
    this.pollIntervalMs = options.pollIntervalMs ?? 2;
  }

  /** `cgroup.kill` when the cgroup2 mount offers it, else the freezer sweep. Creates the parents if need be. */
  async readKillMethod(): Promise<CgroupV1KillMethod> {
    return (await this.prepareParents()).killMethod;
  }

  /** From the pids hierarchy: on some hosts the memory parent differs from process to process. */
  listNames(): Promise<string[]> {
    return listChildDirs(this.parentDirs.pids);
  }

  async open(name: string): Promise<CgroupV1> {
    assertValidCgroupName(name);
    const dirs = await this.dirsFor(name);
    return new CgroupV1(name, dirs, this.fs, this.killTimeoutMs, this.pollIntervalMs);
  }

  private async dirsFor(name: string): Promise<CgroupV1Dirs> {
    const { killMethod } = await this.prepareParents();
    const dirs: CgroupV1Dirs = {
      memory: join(this.parentDirs.memory, name),
      pids: join(this.parentDirs.pids, name),
    };
    if (this.parentDirs.cpu !== undefined) dirs.cpu = join(this.parentDirs.cpu, name);
    if (this.parentDirs.freezer !== undefined) dirs.freezer = join(this.parentDirs.freezer, name);
    if (killMethod === "cgroup.kill" && this.unifiedParentDir !== null) {
      dirs.unified = join(this.unifiedParentDir, name);
    }
    return dirs;
  }

  async create(name: string, limits: CgroupLimits): Promise<CgroupV1> {
    assertValidCgroupName(name);
    const { cpuQuotaUs } = validateCgroupLimits(limits);
    if (cpuQuotaUs !== undefined && this.parentDirs.cpu === undefined) {
      throw new Error("cannot limit CPU: no cgroup v1 cpu hierarchy");
    }
    const dirs = await this.dirsFor(name);
    const made: string[] = [];
    try {
      for (const dir of listDirs(dirs)) {
        await this.fs.makeDir(dir);
        made.push(dir);
      }
      // The memory limit must stay <= the memory+swap limit (else EINVAL): set it first, while memsw is
      // still unlimited. memsw is absent when swap accounting is off; with it, there is no swap escape.
      await this.fs.writeText(join(dirs.memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
      const memswPath = join(dirs.memory, "memory.memsw.limit_in_bytes");
      if (await this.fs.exists(memswPath)) await this.fs.writeText(memswPath, String(limits.memoryBytes));
      await this.fs.writeText(join(dirs.pids, "pids.max"), String(limits.pidsMax));
      if (cpuQuotaUs !== undefined && dirs.cpu !== undefined) {
        await this.fs.writeText(join(dirs.cpu, "cpu.cfs_period_us"), String(cpuPeriodUs));
        await this.fs.writeText(join(dirs.cpu, "cpu.cfs_quota_us"), String(cpuQuotaUs));
      }
    } catch (error) {
      for (const dir of made.reverse()) await this.fs.removeDir(dir).catch(() => {}); // empty: nothing joined
      throw error;
    }
    return new CgroupV1(name, dirs, this.fs, this.killTimeoutMs, this.pollIntervalMs);
  }

  /** Creates Kiln's parent cgroups once and settles the kill method. */
  private prepareParents(): Promise<{ killMethod: CgroupV1KillMethod }> {
    this.parentsReady ??= this.makeParents().catch((error: unknown) => {
      this.parentsReady = null; // let a later create() try again
      throw error;
    });
    return this.parentsReady;
  }

  private async makeParents(): Promise<{ killMethod: CgroupV1KillMethod }> {
    for (const dir of listDirs(this.parentDirs)) await this.makeDirIfMissing(dir);
    if (this.unifiedParentDir !== null) {
      await this.makeDirIfMissing(this.unifiedParentDir);
      // cgroup.kill exists in every non-root cgroup2 directory since Linux 5.14.
      if (await this.fs.exists(join(this.unifiedParentDir, "cgroup.kill")))
        return { killMethod: "cgroup.kill" };
    }
    if (this.parentDirs.freezer === undefined) {
      throw new Error(`no kill switch: ${this.unifiedParentDir} has no cgroup.kill and there is no freezer`);
    }
    return { killMethod: "freezer" };
  }

  private async makeDirIfMissing(dir: string): Promise<void> {
    try {
      await this.fs.makeDir(dir);
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
  }
}

/** One sandbox's cgroup: a directory in each v1 hierarchy, plus its cgroup2 twin when there is one. */
export class CgroupV1 implements Cgroup {
  readonly killMethod: CgroupV1KillMethod;

  constructor(
    readonly name: string,
    readonly dirs: Readonly<CgroupV1Dirs>,
    private readonly fs: CgroupFs,
    private readonly killTimeoutMs: number,
    private readonly pollIntervalMs: number,
  ) {
    this.killMethod = dirs.unified === undefined ? "freezer" : "cgroup.kill";
  }

  get procsFiles(): readonly string[] {
    const order = [this.dirs.unified, this.dirs.freezer, this.dirs.pids, this.dirs.memory, this.dirs.cpu];
    return order.filter((dir) => dir !== undefined).map((dir) => join(dir, "cgroup.procs"));
  }

  get pidsCurrentFile(): string {
    return join(this.dirs.pids, "pids.current");
  }

  async addProcess(pid: number): Promise<void> {
    // Kill switches first: if a later move fails, killAll still reaches the process.
    const order = [this.dirs.unified, this.dirs.freezer, this.dirs.pids, this.dirs.memory, this.dirs.cpu];
    for (const dir of order) {
      if (dir !== undefined) await this.fs.writeText(join(dir, "cgroup.procs"), String(pid));
    }
  }

  async readOomKills(): Promise<number> {
    // memory.failcnt is no OOM signal: it stayed 0 while the limit was hit (research/sandbox.md §1).
    return (await readKeyedNumber(this.fs, join(this.dirs.memory, "memory.oom_control"), "oom_kill")) ?? 0;
  }

  async readMemoryPeakBytes(): Promise<number> {
    return Number((await this.fs.readText(join(this.dirs.memory, "memory.max_usage_in_bytes"))).trim());
  }

  async resetMemoryPeak(): Promise<void> {
    await this.fs.writeText(join(this.dirs.memory, "memory.max_usage_in_bytes"), "0");
  }

  async killAll(): Promise<void> {
    const deadline = performance.now() + this.killTimeoutMs;
    if (this.dirs.unified !== undefined) {
      try {
        await this.fs.writeText(join(this.dirs.unified, "cgroup.kill"), "1");
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error; // twin gone (removed?): the sweep below decides
      }
      const graceDeadline = Math.min(deadline, performance.now() + cgroupKillGraceMs);
      if (await pollUntil(() => this.isEmpty(), graceDeadline, this.pollIntervalMs)) return;
    }
    // Repeat sweeps until empty: a sweep without a freezer can miss a process forked during it.
    while (performance.now() < deadline) {
      await this.sweep(deadline);
      const sweepDeadline = Math.min(deadline, performance.now() + 50);
      if (await pollUntil(() => this.isEmpty(), sweepDeadline, this.pollIntervalMs)) return;
    }
    const left = await this.listPids();
    throw new Error(
      `cgroup ${this.name} still has processes ${this.killTimeoutMs} ms after the kill: ${left.join(", ") || "(twin populated)"}`,
    );
  }

  async remove(): Promise<void> {
    const deadline = performance.now() + removeTimeoutMs;
    const results = await Promise.allSettled(
      listDirs(this.dirs).map((dir) => removeCgroupDir(this.fs, dir, deadline)),
    );
    const failures = results.flatMap((result): unknown[] =>
      result.status === "rejected" ? [result.reason] : [],
    );
    if (failures.length > 0) {
      throw new AggregateError(failures, `could not remove cgroup ${this.name} from every hierarchy`);
    }
  }

  /** Freeze (nothing can fork or exit), SIGKILL every listed pid, thaw (the kills are delivered). */
  private async sweep(deadline: number): Promise<void> {
    const freezer = this.dirs.freezer;
    const statePath = freezer === undefined ? undefined : join(freezer, "freezer.state");
    if (statePath !== undefined) {
      await this.fs.writeText(statePath, "FROZEN");
      // FREEZING until every task has stopped; a task stuck in the kernel must not stall the kill.
      const settleDeadline = Math.min(deadline, performance.now() + freezeSettleMs);
      await pollUntil(
        async () => (await this.fs.readText(statePath)).trim() === "FROZEN",
        settleDeadline,
        this.pollIntervalMs,
      );
    }
    try {
      for (const pid of await this.listPids()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch (error) {
          if (errorCode(error) !== "ESRCH") throw error;
        }
      }
    } finally {
      if (statePath !== undefined) await this.fs.writeText(statePath, "THAWED");
    }
  }

  /** Every pid in any of the v1 hierarchies (cgroup.procs lists no zombies). */
  private async listPids(): Promise<number[]> {
    const v1Dirs = listDirs({ ...this.dirs, unified: undefined });
    const lists = await Promise.all(v1Dirs.map((dir) => readProcs(this.fs, join(dir, "cgroup.procs"))));
    return [...new Set(lists.flat())].filter((pid) => pid > 0);
  }

  private async isEmpty(): Promise<boolean> {
    if (this.dirs.unified !== undefined) {
      try {
        const populated = await readKeyedNumber(
          this.fs,
          join(this.dirs.unified, "cgroup.events"),
          "populated",
        );
        if (populated !== 0) return false;
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error;
      }
    }
    return (await this.listPids()).length === 0;
  }
}

/** The directories that exist, memory first. */
function listDirs(dirs: Readonly<CgroupV1Dirs> | Readonly<CgroupV1ParentDirs>): string[] {
  const unified = "unified" in dirs ? dirs.unified : undefined;
  return [dirs.memory, dirs.pids, dirs.cpu, dirs.freezer, unified].filter((dir) => dir !== undefined);
}
