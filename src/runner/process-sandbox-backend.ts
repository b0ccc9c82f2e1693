/**
 * The `process` level: each sandbox is a plain child process in its own process group, with a clean
 * environment, its own temp directory and a V8 heap limit — and the server's uid, file system and
 * network. For development, or hosts without bubblewrap and cgroups.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { setPriority } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { computeMaxFrameBytes, type HarnessConfig } from "../sandbox/protocol.js";
import { createChildProcessChannel } from "./sandbox-channel.js";
import { listFolder, removeFromFolder } from "./sandbox-folders.js";
import {
  sandboxNodeFlags,
  sandboxNice,
  sandboxPath,
  type SandboxBackend,
  type SandboxProcess,
  type SandboxReset,
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
    };
    const args = [...sandboxNodeFlags(spec.memoryMb), harnessPath, JSON.stringify(harness)];
    const child = spawn(process.execPath, args, {
      cwd: tmpDir,
      env: { PATH: sandboxPath, LANG: "C.UTF-8", HOME: tmpDir, TMPDIR: tmpDir, ...spec.env },
      // fd 3 is the channel to the node (a socketpair).
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      // Its own process group, so a kill reaches the processes the function started (unless they setsid).
      detached: true,
    });
    const channel = createChildProcessChannel(child, computeMaxFrameBytes(spec));
    const pid = child.pid;
    if (pid === undefined) throw new Error("the sandbox process did not start");
    setPriority(pid, sandboxNice);
    return {
      pid,
      channel,
      resetBetweenTasks: () => resetProcessSandbox(pid, [tmpDir, harness.ioDir]),
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

/**
 * Between tasks at this level: the harness's children (and their process groups) are killed and its
 * folders emptied. A process that left the harness's tree is out of reach here: this level isolates
 * nothing from a function that means harm.
 */
async function resetProcessSandbox(harnessPid: number, dirs: string[]): Promise<SandboxReset> {
  const children = await readFile(`/proc/${harnessPid}/task/${harnessPid}/children`, "utf8").catch(() => "");
  for (const child of children
    .split(" ")
    .filter((text) => text !== "")
    .map(Number)) {
    for (const target of [-child, child]) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // not a group leader, or gone
      }
    }
  }
  const listed = dirs.map(listFolder);
  if (listed.some((names) => names === null)) return { reusable: false };
  await Promise.all(dirs.map((dir, i) => removeFromFolder(dir, listed[i] ?? [])));
  return { reusable: true };
}
