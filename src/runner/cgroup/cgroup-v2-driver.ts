/**
 * Cgroup driver for a pure cgroup2 host (typical systemd machines): one directory per sandbox under Kiln's
 * parent cgroup, limits in `memory.max` / `pids.max` / `cpu.max`, kill switch `cgroup.kill`.
 * Kiln's CI hosts are hybrid (v1 controllers), so this driver is tested against a fake cgroup tree only.
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
import { errorCode, kernelCgroupFs, readKeyedNumber, removeCgroupDir, type CgroupFs } from "./cgroup-fs.js";
import { pollUntil } from "./poll-until.js";

export interface CgroupV2DriverOptions {
  /**
   * Kiln's parent cgroup, e.g. `/sys/fs/cgroup/system.slice/kiln.service/kiln`, created on first use. Its own
   * parent must offer the memory and pids controllers (list them in `cgroup.subtree_control`), which
   * `detectCgroupDriver` arranges.
   */
  parentDir: string;
  /** How long `killAll` waits for the cgroup to empty before it rejects. Default 2000 ms. */
  killTimeoutMs?: number;
  /** How often `killAll` checks `cgroup.events`. Default 2 ms. */
  pollIntervalMs?: number;
  /** Default: the real cgroup filesystem. */
  fs?: CgroupFs;
}

const requiredControllers = ["memory", "pids"] as const;
const wantedControllers = ["memory", "pids", "cpu"] as const;
const removeTimeoutMs = 1000;

export class CgroupV2Driver implements CgroupDriver {
  readonly version = "v2";
  readonly parentDir: string;
  private readonly fs: CgroupFs;
  private readonly killTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private parentReady: Promise<ReadonlySet<string>> | null = null;

  constructor(options: CgroupV2DriverOptions) {
    this.parentDir = options.parentDir;
    this.fs = options.fs ?? kernelCgroupFs;
    this.killTimeoutMs = options.killTimeoutMs ?? 2000;
    this.pollIntervalMs = options.pollIntervalMs ?? 2;
  }

  listNames(): Promise<string[]> {
    return listChildDirs(this.parentDir);
  }

  open(name: string): Promise<CgroupV2> {
    assertValidCgroupName(name);
    const dir = join(this.parentDir, name);
    return Promise.resolve(new CgroupV2(name, dir, this.fs, this.killTimeoutMs, this.pollIntervalMs));
  }

  async create(name: string, limits: CgroupLimits): Promise<CgroupV2> {
    assertValidCgroupName(name);
    const { cpuQuotaUs } = validateCgroupLimits(limits);
    const enabled = await this.prepareParent();
    if (cpuQuotaUs !== undefined && !enabled.has("cpu")) {
      throw new Error(`cannot limit CPU: the cpu controller is not available in ${this.parentDir}`);
    }
    const dir = join(this.parentDir, name);
    await this.fs.makeDir(dir);
    try {
      await this.fs.writeText(join(dir, "memory.max"), String(limits.memoryBytes));
      // No swap escape; the file is absent when the kernel does not account swap.
      await this.writeIfPresent(join(dir, "memory.swap.max"), "0");
      // An OOM kill takes the whole sandbox, not just its biggest process (as on v1 after killAll).
      await this.writeIfPresent(join(dir, "memory.oom.group"), "1");
      await this.fs.writeText(join(dir, "pids.max"), String(limits.pidsMax));
      if (cpuQuotaUs !== undefined) {
        await this.fs.writeText(join(dir, "cpu.max"), `${cpuQuotaUs} ${cpuPeriodUs}`);
      }
    } catch (error) {
      await this.fs.removeDir(dir).catch(() => {}); // empty: nothing has joined it yet
      throw error;
    }
    return new CgroupV2(name, dir, this.fs, this.killTimeoutMs, this.pollIntervalMs);
  }

  /** Creates the parent once and enables the controllers for its children. Resolves to those enabled. */
  private prepareParent(): Promise<ReadonlySet<string>> {
    this.parentReady ??= this.enableControllers().catch((error: unknown) => {
      this.parentReady = null; // let a later create() try again
      throw error;
    });
    return this.parentReady;
  }

  private async enableControllers(): Promise<ReadonlySet<string>> {
    try {
      await this.fs.makeDir(this.parentDir);
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const available = (await this.fs.readText(join(this.parentDir, "cgroup.controllers"))).split(/\s+/);
    for (const controller of requiredControllers) {
      if (!available.includes(controller)) {
        throw new Error(
          `the ${controller} controller is not available in ${this.parentDir} (cgroup.controllers: ${available.join(" ").trim() || "none"})`,
        );
      }
    }
    const enabled = wantedControllers.filter((controller) => available.includes(controller));
    await this.fs.writeText(
      join(this.parentDir, "cgroup.subtree_control"),
      enabled.map((controller) => `+${controller}`).join(" "),
    );
    return new Set(enabled);
  }

  private async writeIfPresent(path: string, value: string): Promise<void> {
    if (await this.fs.exists(path)) await this.fs.writeText(path, value);
  }
}

/** One sandbox's cgroup on a cgroup2 hierarchy. */
export class CgroupV2 implements Cgroup {
  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly fs: CgroupFs,
    private readonly killTimeoutMs: number,
    private readonly pollIntervalMs: number,
  ) {}

  get procsFiles(): readonly string[] {
    return [join(this.dir, "cgroup.procs")];
  }

  get pidsCurrentFile(): string {
    return join(this.dir, "pids.current");
  }

  async addProcess(pid: number): Promise<void> {
    await this.fs.writeText(join(this.dir, "cgroup.procs"), String(pid));
  }

  async readOomKills(): Promise<number> {
    return (await readKeyedNumber(this.fs, join(this.dir, "memory.events"), "oom_kill")) ?? 0;
  }

  async readMemoryPeakBytes(): Promise<number> {
    try {
      return Number((await this.fs.readText(join(this.dir, "memory.peak"))).trim());
    } catch (error) {
      if (errorCode(error) === "ENOENT") return 0; // memory.peak appeared in Linux 5.19
      throw error;
    }
  }

  async resetMemoryPeak(): Promise<void> {
    try {
      await this.fs.writeText(join(this.dir, "memory.peak"), "0");
    } catch (error) {
      // Absent before Linux 5.19, read-only before 6.12: then the peak covers the cgroup's whole life.
      const code = errorCode(error);
      if (code !== "ENOENT" && code !== "EACCES" && code !== "EINVAL") throw error;
    }
  }

  async killAll(): Promise<void> {
    const deadline = performance.now() + this.killTimeoutMs;
    try {
      // The kernel kills every process of the cgroup (setsid or not) and, while it walks them, any
      // process they fork: no user-space pid list, no race with fork or pid reuse.
      await this.fs.writeText(join(this.dir, "cgroup.kill"), "1");
    } catch (error) {
      if (errorCode(error) === "ENOENT" && !(await this.fs.exists(this.dir))) return; // already removed
      throw error;
    }
    const emptied = await pollUntil(
      async () => (await readKeyedNumber(this.fs, join(this.dir, "cgroup.events"), "populated")) === 0,
      deadline,
      this.pollIntervalMs,
    );
    if (!emptied) {
      throw new Error(`cgroup ${this.dir} still has processes ${this.killTimeoutMs} ms after cgroup.kill`);
    }
  }

  async remove(): Promise<void> {
    await removeCgroupDir(this.fs, this.dir, performance.now() + removeTimeoutMs);
  }
}
