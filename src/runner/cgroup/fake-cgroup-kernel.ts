/**
 * Test support: a cgroup2 "kernel" over a temp dir, for the v2 driver and detection tests on hosts that
 * have no pure cgroup2 (Kiln's CI). It creates the interface files the kernel would, and simulates the
 * rules the drivers depend on: controllers flow down through `cgroup.subtree_control`, "no internal
 * processes", `cgroup.procs` moves, `cgroup.kill` emptying the cgroup, EBUSY on removing a busy cgroup.
 */
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { kernelCgroupFs, readProcs, type CgroupFs } from "./cgroup-fs.js";

export interface FakeCgroupKernelOptions {
  /** The root's `cgroup.controllers`. Default `cpuset cpu io memory hugetlb pids rdma`. */
  controllers?: string[];
  /** New cgroups get `cgroup.kill` (Linux ≥ 5.14). Default true. */
  cgroupKill?: boolean;
  /** New cgroups get `memory.swap.max` (swap accounting on). Default true. */
  swap?: boolean;
  /** New cgroups get `memory.peak` (Linux ≥ 5.19). Default true. */
  memoryPeak?: boolean;
  /** What writing `1` to `cgroup.kill` does: empty the cgroup after `killDelayMs`, or nothing (stuck). */
  kill?: "empties" | "hangs";
  /** Default 20 ms. */
  killDelayMs?: number;
  /** `makeDir` fails with EACCES, as for a non-root user without a delegated subtree. */
  readOnly?: boolean;
  /** Writes to files with these names fail with EINVAL. */
  failingFiles?: string[];
}

const defaultControllers = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"];

export class FakeCgroupKernel implements CgroupFs {
  /** Every write the drivers made, in order, with paths relative to the root. */
  readonly writes: { path: string; value: string }[] = [];
  private readonly pendingKills = new Set<Promise<void>>();

  private constructor(
    readonly root: string,
    readonly options: Readonly<Required<FakeCgroupKernelOptions>>,
  ) {}

  static async create(options: FakeCgroupKernelOptions = {}): Promise<FakeCgroupKernel> {
    const root = await mkdtemp(join(tmpdir(), "kiln-fake-cgroup-"));
    const kernel = new FakeCgroupKernel(root, {
      controllers: options.controllers ?? defaultControllers,
      cgroupKill: options.cgroupKill ?? true,
      swap: options.swap ?? true,
      memoryPeak: options.memoryPeak ?? true,
      kill: options.kill ?? "empties",
      killDelayMs: options.killDelayMs ?? 20,
      readOnly: options.readOnly ?? false,
      failingFiles: options.failingFiles ?? [],
    });
    await writeFile(join(root, "cgroup.controllers"), `${kernel.options.controllers.join(" ")}\n`);
    await writeFile(join(root, "cgroup.subtree_control"), "\n");
    await writeFile(join(root, "cgroup.procs"), "");
    return kernel;
  }

  /** Absolute path of a file or cgroup given relative to the root. */
  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  async read(...parts: string[]): Promise<string> {
    return (await readFile(this.path(...parts), "utf8")).trim();
  }

  /** Sets the kernel-maintained OOM kill counter of a cgroup. */
  async setOomKills(cgroup: string, count: number): Promise<void> {
    const events = `low 0\nhigh 0\nmax ${count}\noom ${count}\noom_kill ${count}\noom_group_kill 0\n`;
    await writeFile(this.path(cgroup, "memory.events"), events);
  }

  /** Waits for simulated kills still in flight, then deletes the tree. */
  async dispose(): Promise<void> {
    await Promise.all(this.pendingKills);
    await rm(this.root, { recursive: true, force: true });
  }

  async makeDir(path: string): Promise<void> {
    if (this.options.readOnly) throw kernelError("EACCES", "mkdir", path);
    await mkdir(path);
    const controllers = (await readFile(join(dirname(path), "cgroup.subtree_control"), "utf8")).trim();
    const files: Record<string, string> = {
      "cgroup.controllers": `${controllers}\n`,
      "cgroup.subtree_control": "\n",
      "cgroup.procs": "",
      "cgroup.events": "populated 0\nfrozen 0\n",
      "cgroup.freeze": "0\n",
      "cgroup.type": "domain\n",
    };
    if (this.options.cgroupKill) files["cgroup.kill"] = "";
    const enabled = controllers.split(/\s+/);
    if (enabled.includes("memory")) {
      files["memory.max"] = "max\n";
      files["memory.current"] = "0\n";
      files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n";
      files["memory.oom.group"] = "0\n";
      if (this.options.swap) files["memory.swap.max"] = "max\n";
      if (this.options.memoryPeak) files["memory.peak"] = "0\n";
    }
    if (enabled.includes("pids")) {
      files["pids.max"] = "max\n";
      files["pids.current"] = "0\n";
    }
    if (enabled.includes("cpu")) files["cpu.max"] = "max 100000\n";
    for (const [name, content] of Object.entries(files)) await writeFile(join(path, name), content);
  }

  async removeDir(path: string): Promise<void> {
    if (path === this.root) throw kernelError("EBUSY", "rmdir", path);
    const entries = await readdir(path, { withFileTypes: true }); // ENOENT when already gone
    const busy =
      entries.some((entry) => entry.isDirectory()) ||
      (await readProcs(this, join(path, "cgroup.procs"))).length > 0;
    if (busy) throw kernelError("EBUSY", "rmdir", path);
    await rm(path, { recursive: true });
  }

  readText(path: string): Promise<string> {
    return kernelCgroupFs.readText(path);
  }

  exists(path: string): Promise<boolean> {
    return kernelCgroupFs.exists(path);
  }

  async writeText(path: string, value: string): Promise<void> {
    await stat(path).catch(() => {
      throw kernelError("ENOENT", "open", path); // the kernel creates no files on write
    });
    this.writes.push({ path: relative(this.root, path), value });
    const file = basename(path);
    const dir = dirname(path);
    if (this.options.failingFiles.includes(file)) throw kernelError("EINVAL", "write", path);
    switch (file) {
      case "cgroup.subtree_control":
        return this.changeSubtreeControl(dir, value);
      case "cgroup.procs":
        return this.moveProcess(dir, Number(value));
      case "cgroup.kill":
        if (this.options.kill === "empties") this.scheduleKill(dir);
        return;
      default:
        await writeFile(path, value);
    }
  }

  private async changeSubtreeControl(dir: string, value: string): Promise<void> {
    const available = (await readFile(join(dir, "cgroup.controllers"), "utf8")).trim().split(/\s+/);
    const enabled = new Set(
      (await readFile(join(dir, "cgroup.subtree_control"), "utf8")).trim().split(/\s+/),
    );
    enabled.delete("");
    for (const token of value.trim().split(/\s+/)) {
      const controller = token.slice(1);
      if (!available.includes(controller)) throw kernelError("ENOENT", "write", dir);
      if (token.startsWith("+")) enabled.add(controller);
      else enabled.delete(controller);
    }
    const hasProcesses = (await readProcs(this, join(dir, "cgroup.procs"))).length > 0;
    if (dir !== this.root && enabled.size > 0 && hasProcesses) throw kernelError("EBUSY", "write", dir);
    const ordered = this.options.controllers.filter((controller) => enabled.has(controller));
    await writeFile(join(dir, "cgroup.subtree_control"), `${ordered.join(" ")}\n`);
  }

  /** A process is in exactly one cgroup: take it out of every other one. */
  private async moveProcess(dir: string, pid: number): Promise<void> {
    for (const procsPath of await this.listProcsFiles(this.root)) {
      const pids = await readProcs(this, procsPath);
      if (pids.includes(pid))
        await this.setProcs(
          dirname(procsPath),
          pids.filter((other) => other !== pid),
        );
    }
    await this.setProcs(dir, [...(await readProcs(this, join(dir, "cgroup.procs"))), pid]);
  }

  private scheduleKill(dir: string): void {
    const kill = sleep(this.options.killDelayMs)
      .then(() => this.setProcs(dir, []))
      .catch(() => {}) // the cgroup may be gone by then
      .finally(() => this.pendingKills.delete(kill));
    this.pendingKills.add(kill);
  }

  private async setProcs(dir: string, pids: number[]): Promise<void> {
    await writeFile(join(dir, "cgroup.procs"), pids.map((pid) => `${pid}\n`).join(""));
    if (dir !== this.root) {
      await writeFile(join(dir, "cgroup.events"), `populated ${pids.length > 0 ? 1 : 0}\nfrozen 0\n`);
    }
  }

  private async listProcsFiles(dir: string): Promise<string[]> {
    const found = [join(dir, "cgroup.procs")];
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) found.push(...(await this.listProcsFiles(join(dir, entry.name))));
    }
    return found;
  }
}

function kernelError(code: string, syscall: string, path: string): Error {
  return Object.assign(new Error(`${code}: simulated kernel refusal, ${syscall} '${path}'`), {
    code,
    syscall,
    path,
  });
}
