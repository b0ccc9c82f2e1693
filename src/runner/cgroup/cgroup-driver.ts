import { readdir } from "node:fs/promises";

/**
 * The cgroup port: one cgroup per sandbox, holding its memory, pids and CPU limits and the kill switch that
 * ends every process in it. `CgroupV1Driver` (hybrid hosts like Kiln's CI machines) and `CgroupV2Driver`
 * (pure cgroup2, typical systemd hosts) implement it; `detectCgroupDriver` picks one.
 */

export interface CgroupLimits {
  /** Hard memory limit in bytes, counting the JS heap, Buffers, WebAssembly, tmpfs pages and child processes. */
  memoryBytes: number;
  /** Most processes (threads count too) that may exist in the cgroup at once. */
  pidsMax: number;
  /** CPU share in cores, e.g. 1 = one full core; undefined = unlimited */
  cpuCores?: number;
}

export interface Cgroup {
  readonly name: string;
  /**
   * The `cgroup.procs` files a process writes its own pid into to join every hierarchy of this cgroup:
   * a wrapper does that just before it execs the sandbox, so nothing runs outside the limits.
   */
  readonly procsFiles: readonly string[];
  /** The pids controller's `pids.current`: how many processes and threads the cgroup holds now. */
  readonly pidsCurrentFile: string;
  /**
   * Moves a process into this cgroup (all controllers). Only that process moves: children it already
   * has stay where they are, and memory it already uses stays charged to its old cgroup. So add a
   * sandbox before it starts its work (ideally before it execs).
   */
  addProcess(pid: number): Promise<void>;
  /** How many times the kernel OOM-killed a process in this cgroup: the reliable out-of-memory signal. */
  readOomKills(): Promise<number>;
  /** Peak memory use in bytes since creation (or since resetMemoryPeak), for reporting. 0 when the kernel cannot tell. */
  readMemoryPeakBytes(): Promise<number>;
  /** Starts a new peak measurement (e.g. between two tasks of a warm sandbox). A no-op where the kernel cannot. */
  resetMemoryPeak(): Promise<void>;
  /**
   * Kills every process in the cgroup, including ones that called setsid, and resolves once it is empty.
   * Rejects when the cgroup is still populated after the driver's kill timeout (2 s by default).
   */
  killAll(): Promise<void>;
  /** Removes the (empty) cgroup directories; a cgroup already removed is not an error. */
  remove(): Promise<void>;
}

export interface CgroupDriver {
  readonly version: "v1" | "v2";
  /** Creates the cgroup `name` (one path component, unique among live cgroups) with these limits. */
  create(name: string, limits: CgroupLimits): Promise<Cgroup>;
  /** The names of the cgroups under Kiln's parent, including ones a killed node left behind. */
  listNames(): Promise<string[]>;
  /** A handle on an existing cgroup, to kill and remove one left behind. */
  open(name: string): Promise<Cgroup>;
}

/** The child directories of `dir` (cgroups are directories; none when `dir` does not exist yet). */
export async function listChildDirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
}

/** CFS period for CPU limits: 100 ms, the kernel's default, so a quota of 1 core = 100 000 µs. */
export const cpuPeriodUs = 100_000;
/** The kernel refuses CFS quotas under 1 ms. */
const minCpuQuotaUs = 1_000;

const cgroupNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

/** Throws unless `name` is a safe single path component: no `/`, no `..`, at most 100 characters. */
export function assertValidCgroupName(name: string): void {
  if (!cgroupNamePattern.test(name)) {
    throw new Error(`invalid cgroup name ${JSON.stringify(name)}: use letters, digits, '_', '.', '-'`);
  }
}

/** Throws on limits the kernel would reject or misread; returns the CPU quota in µs (undefined = unlimited). */
export function validateCgroupLimits(limits: CgroupLimits): { cpuQuotaUs: number | undefined } {
  if (!Number.isSafeInteger(limits.memoryBytes) || limits.memoryBytes <= 0) {
    throw new Error(`memoryBytes must be a positive integer, got ${limits.memoryBytes}`);
  }
  if (!Number.isSafeInteger(limits.pidsMax) || limits.pidsMax <= 0) {
    throw new Error(`pidsMax must be a positive integer, got ${limits.pidsMax}`);
  }
  if (limits.cpuCores === undefined) return { cpuQuotaUs: undefined };
  if (!Number.isFinite(limits.cpuCores) || limits.cpuCores <= 0) {
    throw new Error(`cpuCores must be a positive number, got ${limits.cpuCores}`);
  }
  return { cpuQuotaUs: Math.max(minCpuQuotaUs, Math.round(limits.cpuCores * cpuPeriodUs)) };
}
