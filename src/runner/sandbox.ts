/**
 * One sandbox: a separate OS process running the harness for one function revision. It runs one task
 * at a time and moves through `starting → idle ⇄ busy → draining → dead`, changed only in `setState`.
 */
import { fork, type ChildProcess } from "node:child_process";
import { setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import type { Lane } from "../store/store.js";
import {
  parseFromSandbox,
  type FromSandbox,
  type HarnessConfig,
  type SandboxFailure,
  type ToSandbox,
} from "../sandbox/protocol.js";

export type SandboxState = "starting" | "idle" | "busy" | "draining" | "dead";

export interface SandboxOptions {
  id: string;
  lane: Lane;
  harness: HarnessConfig;
  memoryMb: number;
  /** The whole environment the function sees: nothing of the server's leaks in. */
  env: Record<string, string>;
}

/** How a task's run on a sandbox ended, as the sandbox saw it. */
export type SandboxOutcome =
  | { type: "done"; result: string | null; failure: SandboxFailure | null; log: string; rssBytes: number }
  | { type: "exited"; reason: string; log: string };

interface PendingRun {
  taskId: string;
  resolve: (outcome: SandboxOutcome) => void;
  onProgress: (percent: number, message?: string) => void;
}

const harnessPath = fileURLToPath(new URL("../sandbox/harness.js", import.meta.url));
const maxStderrTail = 8192;
const sandboxNice = 10;

export class Sandbox {
  readonly id: string;
  readonly lane: Lane;
  readonly pid: number;
  tasksRun = 0;
  lastRssBytes = 0;
  private stateValue: SandboxState = "starting";
  private readonly child: ChildProcess;
  private pending: PendingRun | null = null;
  private stderrTail = "";
  readonly ready: Promise<void>;
  private readonly limits: { maxResultBytes: number; maxLogBytes: number };
  readonly exited: Promise<void>;

  constructor(options: SandboxOptions) {
    this.id = options.id;
    this.lane = options.lane;
    this.limits = options.harness;
    this.child = fork(harnessPath, [JSON.stringify(options.harness)], {
      cwd: options.harness.tmpDir,
      env: options.env,
      execArgv: [`--max-old-space-size=${options.memoryMb}`],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json",
      // Its own process group, so a kill reaches every process the function started.
      detached: true,
    });
    if (this.child.pid === undefined) throw new Error("the sandbox process did not start");
    this.pid = this.child.pid;
    // User code yields the CPU to the node: otherwise, on a small machine, every message to a sandbox
    // lets the woken sandbox preempt the node, and dispatch slows to the pace of the scheduler.
    setPriority(this.pid, sandboxNice);
    this.child.stdout?.resume();
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-maxStderrTail);
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    this.ready = new Promise<void>((resolve, reject) => {
      this.child.on("message", (raw) => {
        const message = parseFromSandbox(raw);
        if (message?.type === "ready" && this.stateValue === "starting") {
          this.setState("idle");
          resolve();
        } else if (message !== null) {
          this.receive(message);
        }
      });
      this.child.once("exit", (code, signal) => {
        const reason = this.describeExit(code, signal);
        this.setState("dead");
        reject(new Error(reason));
        this.pending?.resolve({ type: "exited", reason, log: this.stderrTail });
        this.pending = null;
      });
    });
    this.ready.catch(() => {}); // a failed start is reported to whoever awaits `ready`
  }

  get state(): SandboxState {
    return this.stateValue;
  }

  /** Runs one task; the sandbox must be idle. Resolves when the task ends or the process dies. */
  run(
    task: { taskId: string; attempt: number; payload: string; deadline: number },
    onProgress: PendingRun["onProgress"],
  ): Promise<SandboxOutcome> {
    if (this.stateValue !== "idle") throw new Error(`sandbox ${this.id} is ${this.stateValue}, not idle`);
    this.setState("busy");
    this.tasksRun += 1;
    return new Promise((resolve) => {
      this.pending = { taskId: task.taskId, resolve, onProgress };
      this.send({ type: "run", ...task });
    });
  }

  /** Fires the task's `ctx.signal` (the harness also stops an `exec` command). */
  abort(taskId: string, reason: "timeout" | "cancel"): void {
    this.send({ type: "abort", taskId, reason });
  }

  /** After the running task (if any) ends, the sandbox is not used again. */
  drain(): void {
    if (this.stateValue === "idle") this.kill();
    else if (this.stateValue === "busy" || this.stateValue === "starting") this.setState("draining");
  }

  /** Kills the sandbox's whole process group at once; `exited` resolves when it is gone. */
  kill(): void {
    if (this.stateValue !== "dead") this.setState("draining");
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  get stderr(): string {
    return this.stderrTail;
  }

  private receive(message: FromSandbox): void {
    const pending = this.pending;
    if (pending === null || message.type === "ready" || message.taskId !== pending.taskId) return;
    switch (message.type) {
      case "progress":
        pending.onProgress(message.percent, message.message);
        return;
      case "done":
        this.pending = null;
        this.lastRssBytes = message.rssBytes;
        if (this.stateValue === "busy") this.setState("idle");
        pending.resolve(this.bound(message));
        return;
    }
  }

  /** The harness bounds results and logs, but it shares its process with user code: check again. */
  private bound(message: Extract<FromSandbox, { type: "done" }>): SandboxOutcome {
    const { maxResultBytes, maxLogBytes } = this.limits;
    const log =
      message.log.length > maxLogBytes
        ? `${message.log.slice(0, maxLogBytes)}\n[kiln: log truncated]\n`
        : message.log;
    if (message.result !== null && Buffer.byteLength(message.result) > maxResultBytes) {
      const reason = `result is over the limit of ${maxResultBytes} bytes`;
      return {
        type: "done",
        result: null,
        failure: { kind: "handler_error", message: reason, retryable: false },
        log,
        rssBytes: message.rssBytes,
      };
    }
    return {
      type: "done",
      result: message.result,
      failure: message.failure,
      log,
      rssBytes: message.rssBytes,
    };
  }

  private send(message: ToSandbox): void {
    if (this.child.connected) this.child.send(message);
  }

  private setState(next: SandboxState): void {
    if (this.stateValue === "dead") return;
    this.stateValue = next;
  }

  private describeExit(code: number | null, signal: NodeJS.Signals | null): string {
    if (/JavaScript heap out of memory|Reached heap limit/.test(this.stderrTail)) {
      return "the sandbox ran out of memory (JavaScript heap)";
    }
    const loadFailure = /kiln: the function failed to load: (.*)/.exec(this.stderrTail);
    if (loadFailure?.[1] !== undefined) return `the function failed to load: ${loadFailure[1]}`;
    return signal !== null
      ? `the sandbox process was killed by ${signal}`
      : `the sandbox process exited with code ${code}`;
  }
}
