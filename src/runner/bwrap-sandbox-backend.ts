/**
 * The `strong` level: each sandbox runs as its own unprivileged uid (no capabilities, `NoNewPrivs`),
 * inside bubblewrap's pid, mount, network, ipc and uts namespaces (read-only system, the function's
 * code read-only, a private size-capped `/tmp`, its own loopback only), in a cgroup of its own that
 * caps memory (Buffers and child processes included), pids and CPU and kills everything in it at once.
 */
import { spawn } from "node:child_process";
import { setPriority } from "node:os";
import path from "node:path";
import { computeMaxFrameBytes, type HarnessConfig } from "../sandbox/protocol.js";
import { BwrapSandboxReset } from "./bwrap-sandbox-reset.js";
import type { CgroupDriver } from "./cgroup/cgroup-driver.js";
import { harnessPath } from "./process-sandbox-backend.js";
import { createChildProcessChannel } from "./sandbox-channel.js";
import {
  heapLimitMb,
  sandboxNice,
  sandboxPath,
  type SandboxBackend,
  type SandboxProcess,
  type SandboxSpec,
} from "./sandbox-backend.js";

export interface BwrapSandboxBackendOptions {
  cgroups: CgroupDriver;
  /** Sandboxes get uids from `firstUid` on, one each while they live. */
  firstUid: number;
  uidCount: number;
  /** Size cap of each sandbox's `/tmp` (its pages also count against the memory limit). */
  tmpSizeMb: number;
  /** Most processes and threads in one sandbox (a fork bomb stops there). */
  pidsMax: number;
  /** CPU a sandbox may use, in cores. */
  cpuCores: number;
  /** Room for the payload file of an `exec` function. */
  maxPayloadBytes: number;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A Node installed outside /usr (nvm, /opt) is bound read-only where it is. */
function nodeOutsideUsr(): string[] {
  if (process.execPath.startsWith("/usr/")) return [];
  const prefix = path.dirname(path.dirname(process.execPath));
  return ["--ro-bind", prefix, prefix];
}

const inside = { code: "/kiln/code", harness: "/kiln/harness", io: "/kiln/io", tmp: "/tmp" };

export class BwrapSandboxBackend implements SandboxBackend {
  readonly level = "strong";
  private readonly freeUids: number[];

  constructor(private readonly options: BwrapSandboxBackendOptions) {
    this.freeUids = Array.from({ length: options.uidCount }, (_, i) => options.firstUid + i).reverse();
  }

  /** Cgroups are named after the node's pid: those of nodes no longer running are removed. */
  async removeLeftovers(): Promise<number> {
    let removed = 0;
    for (const name of await this.options.cgroups.listNames()) {
      const pid = Number(/^kiln-(\d+)-/.exec(name)?.[1] ?? NaN);
      if (!Number.isInteger(pid) || pid === process.pid || isRunning(pid)) continue;
      const cgroup = await this.options.cgroups.open(name);
      await cgroup.killAll().catch(() => {});
      await cgroup.remove().catch(() => {});
      removed += 1;
    }
    return removed;
  }

  async start(spec: SandboxSpec): Promise<SandboxProcess> {
    const uid = this.freeUids.pop();
    if (uid === undefined) throw new Error("no free sandbox uid left");
    let cgroup;
    try {
      // The node's pid in the name: cgroups live host-wide, and two nodes may share a host.
      cgroup = await this.options.cgroups.create(`kiln-${process.pid}-${spec.id}`, {
        memoryBytes: spec.memoryMb * 1024 * 1024,
        pidsMax: this.options.pidsMax,
        cpuCores: this.options.cpuCores,
      });
    } catch (error) {
      this.freeUids.push(uid);
      throw error;
    }
    const harness: HarnessConfig = {
      runtime: spec.runtime,
      codeDir: inside.code,
      entry: spec.entry,
      tmpDir: inside.tmp,
      ioDir: inside.io,
      maxResultBytes: spec.maxResultBytes,
      maxLogBytes: spec.maxLogBytes,
    };
    // The shell joins the cgroup, then execs: bwrap and everything under it start inside the limits, and
    // the slow part of a cgroup move (~12 ms here) happens in this child, not on the node's event loop.
    const join = cgroup.procsFiles.map((file) => `echo $$ > '${file}'`).join(" && ");
    const child = spawn(
      "/bin/sh",
      [
        "-c",
        `${join} && exec "$@"`,
        "sh",
        "/usr/bin/bwrap",
        ...this.bwrapArgs(spec, uid),
        ...this.command(spec, harness),
      ],
      // fd 3 is the channel to the node (a socketpair), passed through bwrap and setpriv.
      { stdio: ["ignore", "pipe", "pipe", "pipe"], env: {}, detached: true },
    );
    const channel = createChildProcessChannel(child, computeMaxFrameBytes(spec));
    const pid = child.pid;
    if (pid === undefined) {
      await cgroup.remove().catch(() => {});
      this.freeUids.push(uid);
      throw new Error("the sandbox process did not start");
    }
    setPriority(pid, sandboxNice);
    let disposed = false;
    const reset = new BwrapSandboxReset(cgroup, uid, { tmp: inside.tmp, io: inside.io });
    return {
      pid,
      channel,
      resetBetweenTasks: () => reset.run(),
      kill: () => {
        if (disposed) return;
        void cgroup.killAll().catch(() => {
          // The cgroup could not be emptied: kill what the process group still holds.
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            // already gone
          }
        });
      },
      wasOutOfMemory: async () => (await cgroup.readOomKills()) > 0,
      dispose: async () => {
        if (disposed) return;
        disposed = true;
        await cgroup.killAll().catch(() => {});
        await cgroup.remove().catch(() => {});
        this.freeUids.push(uid);
      },
    };
  }

  private bwrapArgs(spec: SandboxSpec, uid: number): string[] {
    const env: Record<string, string> = {
      PATH: sandboxPath,
      LANG: "C.UTF-8",
      HOME: inside.tmp,
      TMPDIR: inside.tmp,
      ...spec.env,
    };
    const ioBytes = this.options.maxPayloadBytes + 64 * 1024;
    // prettier-ignore
    return [
      "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
      "--die-with-parent", "--new-session", "--clearenv",
      ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
      "--ro-bind", "/usr", "/usr",
      ...nodeOutsideUsr(),
      "--symlink", "usr/bin", "/bin",
      "--symlink", "usr/sbin", "/sbin",
      "--symlink", "usr/lib", "/lib",
      "--symlink", "usr/lib64", "/lib64",
      // bwrap makes missing parents 0700: /etc must be readable by the sandbox's uid.
      "--perms", "0755", "--dir", "/etc",
      "--ro-bind-try", "/etc/ssl", "/etc/ssl",
      "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
      "--ro-bind-try", "/etc/localtime", "/etc/localtime",
      "--proc", "/proc",
      "--dev", "/dev",
      "--perms", "1777", "--size", String(this.options.tmpSizeMb * 1024 * 1024), "--tmpfs", inside.tmp,
      "--perms", "0755", "--dir", "/kiln",
      "--perms", "1777", "--size", String(ioBytes), "--tmpfs", inside.io,
      "--ro-bind", path.dirname(harnessPath), inside.harness,
      "--ro-bind", spec.codeDir, inside.code,
      "--chdir", inside.tmp,
      "--hostname", "sandbox",
      "--",
      // bwrap started by root keeps every capability unless the task drops to another uid: setpriv does.
      "/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--no-new-privs",
      "--inh-caps=-all", "--bounding-set=-all",
    ];
  }

  private command(spec: SandboxSpec, harness: HarnessConfig): string[] {
    return [
      process.execPath,
      `--max-old-space-size=${heapLimitMb(spec.memoryMb)}`,
      path.posix.join(inside.harness, path.basename(harnessPath)),
      JSON.stringify(harness),
    ];
  }
}
