/**
 * The reset of a `strong` sandbox between tasks, done by the node from outside it: every process of the
 * sandbox's cgroup but the harness and bubblewrap's own is killed, its `/tmp` and I/O folder are emptied
 * through `/proc/<harness>/root`, and the space of both tmpfs is checked to have come back. Nothing the
 * sandbox says is trusted: the harness is found by what the kernel reports.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Cgroup } from "./cgroup/cgroup-driver.js";
import type { SandboxReset } from "./sandbox-backend.js";
import { listFolder, readUsage, removeFromFolder } from "./sandbox-folders.js";

/** Folders of the sandbox the node empties, as the sandbox sees them. */
export interface SandboxFolders {
  tmp: string;
  io: string;
}

/** A tmpfs holds a few KiB of its own when empty; more than this was not given back. */
const maxUsedBytesWhenEmpty = 1024 * 1024;
/** How long leftovers may keep forking before the sandbox is given up on. */
const killTimeoutMs = 1000;
/** How long a stopped harness may take to stop (every thread finishes its syscall first). */
const stopTimeoutMs = 200;

interface HostProcess {
  uid: number;
  /** Its pid in each pid namespace it is in, outermost first. */
  nsPids: number[];
}

export class BwrapSandboxReset {
  /** The harness's host pid and bubblewrap's processes: found once, at the first reset (at ready). */
  private kept: { harness: number; pids: Set<number> } | null = null;
  /**
   * The cgroup's `pids.current` and the harness's `/proc/<pid>/task`, kept open: a check is one `pread`
   * and two `fstat` (~5 µs, where listing `cgroup.procs` costs ~30 µs).
   */
  private readonly fds = new Map<string, number>();

  constructor(
    private readonly cgroup: Cgroup,
    private readonly uid: number,
    private readonly folders: SandboxFolders,
  ) {}

  async run(): Promise<SandboxReset> {
    this.kept ??= await this.findHarness();
    if (this.kept === null) return { reusable: false }; // not the sandbox this reset knows how to clean
    const { harness } = this.kept;
    // The processes of the cgroup are listed only when it holds more than the harness's threads and
    // bubblewrap's processes. (A thread a task leaves running in the harness can fork after any check:
    // the reset ends what a task left behind, not what it keeps doing — the README's trust boundary
    // within a revision.)
    if (!this.holdsOnlyKept() && !(await this.killLeftovers())) return { reusable: false };
    const root = `/proc/${harness}/root`;
    const dirs = [root + this.folders.tmp, root + this.folders.io];
    let usage = dirs.map(readUsage);
    if (!usage.every((folder) => folder.empty)) {
      const listed = dirs.map(listFolder);
      if (listed.some((names) => names === null)) return { reusable: false };
      if (listed.some((names) => names !== null && names.length > 0)) {
        // Stopped, the harness (the only process left that runs task code) cannot swap a folder for a
        // link while the node, as root, removes what it finds.
        process.kill(harness, "SIGSTOP");
        try {
          // Still in the cgroup once stopped: the pid was not reused by a host process since it was found.
          if (!(await waitStopped(harness)) || !this.listPids().includes(harness)) return { reusable: false };
          await Promise.all(dirs.map((dir, i) => removeFromFolder(dir, listed[i] ?? [])));
        } finally {
          process.kill(harness, "SIGCONT");
        }
        usage = dirs.map(readUsage);
      }
    }
    // A file deleted but held open by the harness keeps its space: the next task would find less.
    return { reusable: usage.every((folder) => folder.usedBytes <= maxUsedBytesWhenEmpty) };
  }

  /** Closes what the reset keeps open (the sandbox is gone). */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  /**
   * Whether the cgroup holds the harness's threads and bubblewrap's (single-threaded) processes and
   * nothing else. The harness's threads are counted before and after the cgroup's count, and must
   * agree: a task that ends one of its threads while it forks cannot make the two counts meet.
   */
  private holdsOnlyKept(): boolean {
    const kept = this.kept;
    if (kept === null) return false;
    try {
      // procfs gives a process's `task` folder one link per thread, and two of its own.
      const taskFolder = this.keptFd(`/proc/${kept.harness}/task`);
      const threads = () => fstatSync(taskFolder).nlink - 2;
      const before = threads();
      const pidsCurrent = this.keptFd(this.cgroup.pidsCurrentFile);
      const buffer = Buffer.allocUnsafe(32);
      const inCgroup = Number(buffer.toString("latin1", 0, readSync(pidsCurrent, buffer, 0, 32, 0)).trim());
      return before === threads() && inCgroup === before + kept.pids.size - 1;
    } catch {
      return false; // the harness is gone, or the cgroup: the processes are listed
    }
  }

  /** An fd on `file`, opened once and kept (`close` closes them). */
  private keptFd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) this.fds.set(file, (fd = openSync(file, "r")));
    return fd;
  }

  /**
   * The harness is the first process bubblewrap's init starts (pid 2 in the sandbox's pid namespace),
   * running as the sandbox's uid; the root processes of the cgroup are bubblewrap's own (the sandbox's
   * uid cannot make a root process).
   */
  private async findHarness(): Promise<{ harness: number; pids: Set<number> } | null> {
    const pids = new Set<number>();
    let harness: number | null = null;
    for (const pid of this.listPids()) {
      const info = await readHostProcess(pid);
      if (info?.uid === 0) pids.add(pid);
      if (info?.uid === this.uid && info.nsPids.length > 1 && info.nsPids.at(-1) === 2) harness = pid;
    }
    if (harness === null) return null;
    pids.add(harness);
    return { harness, pids };
  }

  /** Kills every other process of the cgroup until none is left (a leftover may fork meanwhile). */
  private async killLeftovers(): Promise<boolean> {
    const kept = this.kept?.pids ?? new Set<number>();
    const deadline = performance.now() + killTimeoutMs;
    for (;;) {
      const leftovers = this.listPids().filter((pid) => !kept.has(pid));
      if (leftovers.length === 0) return true;
      if (performance.now() > deadline) return false;
      for (const pid of leftovers) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      await sleep(1);
    }
  }

  /**
   * Every process in the sandbox's cgroup. One hierarchy's `cgroup.procs` lists them all: the sandbox
   * joined every hierarchy before it started, its processes inherit that, and its uid cannot move them.
   * Read synchronously: ~30 µs, where a thread-pool round trip costs ~0.7 ms on a busy node (measured).
   */
  private listPids(): number[] {
    const file = this.cgroup.procsFiles[0];
    if (file === undefined) return [];
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return []; // the cgroup is already removed
    }
    return text
      .split("\n")
      .filter((line) => line !== "")
      .map(Number);
  }
}

async function readHostProcess(pid: number): Promise<HostProcess | null> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => null);
  if (status === null) return null;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  const nsPids = (/^NSpid:\s+(.*)$/m.exec(status)?.[1] ?? "").trim().split(/\s+/).map(Number);
  return { uid, nsPids };
}

/** Whether every thread of `pid` has stopped. */
async function waitStopped(pid: number): Promise<boolean> {
  const deadline = performance.now() + stopTimeoutMs;
  while (performance.now() < deadline) {
    const threads = await readdir(`/proc/${pid}/task`).catch(() => []);
    const states = await Promise.all(
      threads.map(async (tid) => {
        const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => "");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      }),
    );
    if (threads.length > 0 && states.every((state) => state === "T" || state === "t")) return true;
    await sleep(1);
  }
  return false;
}
