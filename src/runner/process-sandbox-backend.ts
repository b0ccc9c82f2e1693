/**
 * The `process` level: each sandbox is a plain child process in its own process group, with a clean
 * environment, its own temp directory and a V8 heap limit — and the server's uid, file system and
 * network. For development, or hosts without bubblewrap and cgroups.
 */
import { fork } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { setPriority } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { HarnessConfig } from "../sandbox/protocol.js";
import {
  heapLimitMb,
  sandboxNice,
  sandboxPath,
  type SandboxBackend,
  type SandboxProcess,
  type SandboxSpec,
} from "./sandbox-backend.js";

export const harnessPath = fileURLToPath(new URL("../sandbox/harness.js", import.meta.url));

export class ProcessSandboxBackend implements SandboxBackend {
  readonly level = "process";

  /** Its sandboxes hold nothing outside their directory, which the pool reaps. */
  removeLeftovers(): Promise<number> {
    return Promise.resolve(0);
  }

  async start(spec: SandboxSpec): Promise<SandboxProcess> {
    const tmpDir = path.join(spec.workDir, "tmp");
    await mkdir(tmpDir, { recursive: true });
    const harness: HarnessConfig = {
      runtime: spec.runtime,
      codeDir: spec.codeDir,
      entry: spec.entry,
      tmpDir,
      ioDir: path.join(spec.workDir, "io"),
      maxResultBytes: spec.maxResultBytes,
      maxLogBytes: spec.maxLogBytes,
      ownPidNamespace: false,
      privateTmpfs: false,
    };
    const child = fork(harnessPath, [JSON.stringify(harness)], {
      cwd: tmpDir,
      env: { PATH: sandboxPath, LANG: "C.UTF-8", HOME: tmpDir, TMPDIR: tmpDir, ...spec.env },
      execArgv: [`--max-old-space-size=${heapLimitMb(spec.memoryMb)}`],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json",
      // Its own process group, so a kill reaches the processes the function started (unless they setsid).
      detached: true,
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error("the sandbox process did not start");
    setPriority(pid, sandboxNice);
    return {
      child,
      kill: () => {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      },
      wasOutOfMemory: () => Promise.resolve(false),
      dispose: () => Promise.resolve(),
    };
  }
}
