/**
 * The `SandboxBackend` port: how a sandbox process is made, limited and killed. The pool and the
 * dispatcher never know which backend runs, so another (a microVM) can replace these without them.
 */
import type { ChildProcess } from "node:child_process";
import type { Runtime } from "../domain/function-settings.js";

/** `strong`: own uid, namespaces and cgroup per sandbox. `process`: a plain child process (development). */
export type IsolationLevel = "strong" | "process";

export interface SandboxSpec {
  id: string;
  runtime: Runtime;
  /** The revision's code on the host (read-only to the sandbox). */
  codeDir: string;
  entry: string[];
  memoryMb: number;
  /** The function's env; the backend adds only PATH, HOME, TMPDIR and LANG. */
  env: Record<string, string>;
  /** A host directory that is the sandbox's own, removed after it exits. */
  workDir: string;
  maxResultBytes: number;
  maxLogBytes: number;
}

export interface SandboxProcess {
  /** The process the node talks to over IPC (its exit is the sandbox's end). */
  readonly child: ChildProcess;
  /** Kills every process of the sandbox, including ones that left its process group. */
  kill(): void;
  /** Whether the kernel killed something in the sandbox for exceeding its memory (read after the exit). */
  wasOutOfMemory(): Promise<boolean>;
  /** Frees what the sandbox held (cgroup, uid) once it has exited. */
  dispose(): Promise<void>;
}

export interface SandboxBackend {
  readonly level: IsolationLevel;
  start(spec: SandboxSpec): Promise<SandboxProcess>;
  /** Frees what sandboxes of a node that was killed (`kill -9`) left behind; returns how many. */
  removeLeftovers(): Promise<number>;
}

export const sandboxPath = "/usr/local/bin:/usr/bin:/bin";

/** User code yields the CPU to the node (see `Sandbox`): niceness of every sandbox process. */
export const sandboxNice = 10;

/** V8's heap limit: below the memory tier, so an ordinary leak ends as a readable heap error first. */
export function heapLimitMb(memoryMb: number): number {
  return Math.max(32, Math.floor(memoryMb * 0.75));
}
