/**
 * The reset of a `strong` sandbox between tasks, done by the node from outside it: every process of the
 * sandbox's cgroup but the harness and bubblewrap's own is killed, its `/tmp` and I/O folder are emptied
 * through `/proc/<harness>/root`, and the space of both tmpfs is checked to have come back. Nothing the
 * sandbox says is trusted: the harness is found by what the kernel reports.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
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
  /** `pids.current` of the cgroup, kept open: a read is one `pread` (~2 µs, an open and read ~30 µs). */
  private pidsCurrentFd: number | null = null;
  /** `pids.current` when the last reset found no process to kill; -1 before the first. */
  private countWhenClean = -1;

  constructor(
    private readonly cgroup: Cgroup,
    private readonly uid: number,
    private readonly folders: SandboxFolders,
  ) {}

  async run(): Promise<SandboxReset> {
    this.kept ??= await this.findHarness();
    if (this.kept === null) return { reusable: false }; // not the sandbox this reset knows how to clean
    const { harness } = this.kept;
    // As many processes and threads as after the last clean reset: no process was left behind. (A
    // thread a task leaves running in the harness can fork after any check: the reset ends what a task
    // left behind, not what it keeps doing — the README's trust boundary within a revision.)
    const count = this.readPidsCurrent();
    if (count !== this.countWhenClean) {
      const found = await this.killLeftovers();
      if (found === "failed") return { reusable: false };
      // Only a count with nothing to kill: a process killed counts until its parent reaps it.
      this.countWhenClean = found === "none" ? count : -1;
    }
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
    if (this.pidsCurrentFd !== null) closeSync(this.pidsCurrentFd);
    this.pidsCurrentFd = null;
  }

  /** The cgroup's `pids.current`, or -1 when it cannot be read (then every reset lists the processes). */
  private readPidsCurrent(): number {
    try {
      this.pidsCurrentFd ??= openSync(this.cgroup.pidsCurrentFile, "r");
      const buffer = Buffer.allocUnsafe(32);
      const count = Number(buffer.toString("latin1", 0, readSync(this.pidsCurrentFd, buffer, 0, 32, 0)));
      return Number.isInteger(count) ? count : -1;
    } catch {
      return -1;
    }
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

  /**
   * Kills every other process of the cgroup until none is left (a leftover may fork meanwhile): "none"
   * when there was none, "killed" once they are gone, "failed" when they kept coming back.
   */
  private async killLeftovers(): Promise<"none" | "killed" | "failed"> {
    const kept = this.kept?.pids ?? new Set<number>();
    const deadline = performance.now() + killTimeoutMs;
    for (let round = 0; ; round++) {
      const leftovers = this.listPids().filter((pid) => !kept.has(pid));
      if (leftovers.length === 0) return round === 0 ? "none" : "killed";
      if (performance.now() > deadline) return "failed";
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
