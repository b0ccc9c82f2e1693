/**
 * The `strong` level: each sandbox runs as its own unprivileged uid (no capabilities, `NoNewPrivs`),
 * inside bubblewrap's pid, mount, network, ipc and uts namespaces (read-only system, the function's
 * code read-only, a private size-capped `/tmp`, its own loopback only), in a cgroup of its own that
 * caps memory (Buffers and child processes included), pids and CPU and kills everything in it at once.
 * A seccomp filter refuses what Docker's default profile refuses (see `seccomp-filter.ts`). bwrap gets
 * its arguments through a pipe, so a function's env is never on any command line (`ps` shows
 * `bwrap --args 4`); the harness gets it as its environment, readable only by its own uid and root.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setPriority } from "node:os";
import path from "node:path";
import { computeMaxFrameBytes, type HarnessConfig } from "../sandbox/protocol.js";
import { BwrapSandboxReset } from "./bwrap-sandbox-reset.js";
import type { Cgroup, CgroupDriver } from "./cgroup/cgroup-driver.js";
import { harnessPath } from "./process-sandbox-backend.js";
import { createChildProcessChannel } from "./sandbox-channel.js";
import {
  sandboxNodeFlags,
  sandboxNice,
  sandboxPath,
  type SandboxBackend,
  type SandboxProcess,
  type SandboxSpec,
} from "./sandbox-backend.js";
import type { UidAllocator } from "./uid-allocator.js";
import { assertFitsExec } from "./assert-fits-exec.js";

export interface BwrapSandboxBackendOptions {
  cgroups: CgroupDriver;
  /** A uid of its own for each sandbox, never one another sandbox had or has. */
  uids: UidAllocator;
  /** The BPF program bwrap applies with `--seccomp` (`buildSeccompFilter`). */
  seccompFilter: Buffer;
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

/** bwrap started by root keeps every capability unless the task drops to another uid: setpriv does. */
function dropPrivileges(uid: number): string[] {
  // prettier-ignore
  return [
    "/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--no-new-privs",
    "--inh-caps=-all", "--bounding-set=-all",
  ];
}

/** The fds bwrap reads its arguments and its seccomp filter from; fd 3 is the channel to the node. */
const argsFd = 4;
const seccompFd = 5;

export class BwrapSandboxBackend implements SandboxBackend {
  readonly level = "strong";

  constructor(private readonly options: BwrapSandboxBackendOptions) {}

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
    const harness: HarnessConfig = {
      runtime: spec.runtime,
      codeDir: inside.code,
      entry: spec.entry,
      tmpDir: inside.tmp,
      ioDir: inside.io,
      maxResultBytes: spec.maxResultBytes,
      maxLogBytes: spec.maxLogBytes,
    };
    const env = this.environment(spec);
    const command = this.command(spec, harness);
    // Refused before anything is taken: the kernel would refuse bwrap's exec of the sandbox (E2BIG).
    assertFitsExec(env, command);
    // The node's pid in the name: cgroups live host-wide, and two nodes may share a host.
    const cgroup = await this.options.cgroups.create(`kiln-${process.pid}-${spec.id}`, {
      memoryBytes: spec.memoryMb * 1024 * 1024,
      pidsMax: this.options.pidsMax,
      cpuCores: this.options.cpuCores,
    });
    const uid = this.options.uids.allocate();
    let child: ChildProcess;
    try {
      child = this.spawnInto(cgroup, this.bwrapArgs(spec, env), [...dropPrivileges(uid), ...command]);
    } catch (error) {
      await cgroup.remove().catch(() => {});
      throw error;
    }
    const channel = createChildProcessChannel(child, computeMaxFrameBytes(spec));
    const pid = child.pid;
    if (pid === undefined) {
      // Node reports why on the 'error' event, which spawnInto listens to.
      await cgroup.remove().catch(() => {});
      throw new Error("the sandbox process did not start");
    }
    try {
      setPriority(pid, sandboxNice);
    } catch {
      // It has exited already: the 'exit' event tells the sandbox why, and dispose() frees the cgroup.
    }
    let disposed = false;
    const kill = () => {
      if (disposed) return;
      void cgroup.killAll().catch(() => {
        // The cgroup could not be emptied: kill what the process group still holds.
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      });
    };
    // After the start, an error on the process means the node can no longer reach it.
    child.on("error", kill);
    const reset = new BwrapSandboxReset(cgroup, uid, { tmp: inside.tmp, io: inside.io });
    return {
      pid,
      channel,
      resetBetweenTasks: () => reset.run(),
      kill,
      wasOutOfMemory: async () => (await cgroup.readOomKills()) > 0,
      dispose: async () => {
        if (disposed) return;
        disposed = true;
        reset.close();
        await cgroup.killAll().catch(() => {});
        await cgroup.remove().catch(() => {});
      },
    };
  }

  /**
   * The shell joins the cgroup, then execs: bwrap and everything under it start inside the limits, and
   * the slow part of a cgroup move (~12 ms here) happens in this child, not on the node's event loop.
   */
  private spawnInto(cgroup: Cgroup, bwrapArgs: string[], command: string[]): ChildProcess {
    const join = cgroup.procsFiles.map((file) => `echo $$ > '${file}'`).join(" && ");
    const child = spawn(
      "/bin/sh",
      // bwrap reads its options from the pipe; the command (no secrets in it) must be on its command line.
      ["-c", `${join} && exec "$@"`, "sh", "/usr/bin/bwrap", "--args", String(argsFd), "--", ...command],
      {
        // fd 3 is the channel to the node (a socketpair), passed through bwrap and setpriv.
        stdio: ["ignore", "pipe", "pipe", "pipe", "pipe", "pipe"],
        env: {},
        detached: true,
      },
    );
    child.on("error", () => {});
    for (const [fd, data] of [
      [argsFd, Buffer.from(bwrapArgs.map((arg) => `${arg}\0`).join(""))],
      [seccompFd, this.options.seccompFilter],
    ] as const) {
      const pipe = (child.stdio as readonly unknown[])[fd] as NodeJS.WritableStream | null;
      // A sandbox that ends before reading (a failed cgroup join) closes the pipe: its exit says why.
      pipe?.on("error", () => {});
      pipe?.end(data);
    }
    return child;
  }

  private environment(spec: SandboxSpec): Record<string, string> {
    return {
      PATH: sandboxPath,
      LANG: "C.UTF-8",
      HOME: inside.tmp,
      TMPDIR: inside.tmp,
      ...spec.env,
    };
  }

  private bwrapArgs(spec: SandboxSpec, env: Record<string, string>): string[] {
    const ioBytes = this.options.maxPayloadBytes + 64 * 1024;
    // prettier-ignore
    return [
      "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
      "--die-with-parent", "--new-session", "--clearenv", "--seccomp", String(seccompFd),
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
    ];
  }

  private command(spec: SandboxSpec, harness: HarnessConfig): string[] {
    return [
      process.execPath,
      ...sandboxNodeFlags(spec.memoryMb),
      path.posix.join(inside.harness, path.basename(harnessPath)),
      JSON.stringify(harness),
    ];
  }
}
