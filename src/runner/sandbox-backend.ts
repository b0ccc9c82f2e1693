/**
 * The `SandboxBackend` port: how a sandbox process is made, limited and killed. The pool and the
 * dispatcher never know which backend runs, so another (a microVM) can replace these without them.
 */
import type { Runtime } from "../domain/function-settings.js";
import type { FromSandbox, ToSandbox } from "../sandbox/protocol.js";

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

/** How a sandbox process ended. */
export interface SandboxExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of what it wrote to stderr (a failed import or V8's out-of-memory message shows there). */
  stderrTail: string;
}

/**
 * The node's end of the message channel to a sandbox: framed, bounded, parsed on receipt. One listener
 * per event (the `Sandbox`); nothing is delivered after `onMalformed` or `onExit`.
 */
export interface SandboxChannel {
  send(message: ToSandbox): void;
  /** A valid message and the size of the frame it came in. */
  onMessage(listener: (message: FromSandbox, frameBytes: number) => void): void;
  /** The sandbox broke the protocol (a frame too large, not JSON, not a message); the channel is closed. */
  onMalformed(listener: (reason: string) => void): void;
  onExit(listener: (exit: SandboxExit) => void): void;
}

/** What `resetBetweenTasks` found: false when the next task would inherit something, so replace it. */
export interface SandboxReset {
  reusable: boolean;
}

export interface SandboxProcess {
  /** The host pid of the process the backend started (recorded for the reaping after a `kill -9`). */
  readonly pid: number;
  readonly channel: SandboxChannel;
  /**
   * Done by the node from outside the sandbox after every task (and once at ready), while the harness
   * waits: kills every process of the sandbox but the harness, empties its temp and I/O folders
   * without following links, and checks their space came back.
   */
  resetBetweenTasks(): Promise<SandboxReset>;
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

/**
 * The flags of `node` in a sandbox. The heap limit sits below the memory tier, so an ordinary leak ends
 * as a readable heap error first. A sandbox runs its harness a few thousand times before V8's default
 * budget optimises it; a smaller budget optimises it ~8× sooner, which lifted a 20,000-task drain from
 * ~6,000 to ~8,500 tasks/s (bench/README.md).
 */
export function sandboxNodeFlags(memoryMb: number): string[] {
  return [`--max-old-space-size=${Math.max(32, Math.floor(memoryMb * 0.75))}`, "--interrupt-budget=8192"];
}
