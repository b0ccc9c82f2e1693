/**
 * One sandbox: a process started by a `SandboxBackend`, running the harness for one function revision.
 * It runs one task at a time and moves through `starting → idle ⇄ busy → draining → dead`, changed only
 * in `setState`.
 */
import type { Lane } from "../domain/lane.js";
import {
  parseFromSandbox,
  type FromSandbox,
  type SandboxFailure,
  type ToSandbox,
} from "../sandbox/protocol.js";
import type { SandboxProcess } from "./sandbox-backend.js";

export type SandboxState = "starting" | "idle" | "busy" | "draining" | "dead";

/** How a task's run on a sandbox ended, as the sandbox saw it. */
export type SandboxOutcome =
  | { type: "done"; result: string | null; failure: SandboxFailure | null; log: string; rssBytes: number }
  | { type: "exited"; reason: string; outOfMemory: boolean; log: string };

interface PendingRun {
  taskId: string;
  resolve: (outcome: SandboxOutcome) => void;
  onProgress: (percent: number, message?: string) => void;
}

const maxStderrTail = 8192;
const heapOutOfMemory = /JavaScript heap out of memory|Reached heap limit/;

export class Sandbox {
  readonly id: string;
  readonly lane: Lane;
  tasksRun = 0;
  lastRssBytes = 0;
  /** False once a task left the sandbox in a state the next task must not inherit. */
  reusable = true;
  readonly ready: Promise<void>;
  /** Resolves once the process has exited and the backend has released what it held. */
  readonly exited: Promise<void>;
  private stateValue: SandboxState = "starting";
  private pending: PendingRun | null = null;
  private stderrTail = "";
  private readonly limits: { maxResultBytes: number; maxLogBytes: number };

  constructor(
    options: { id: string; lane: Lane; maxResultBytes: number; maxLogBytes: number },
    private readonly process: SandboxProcess,
  ) {
    this.id = options.id;
    this.lane = options.lane;
    this.limits = options;
    const { child } = process;
    child.stdout?.resume();
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-maxStderrTail);
    });
    let exitedResolve: () => void = () => {};
    this.exited = new Promise((resolve) => (exitedResolve = resolve));
    this.ready = new Promise<void>((resolve, reject) => {
      child.on("message", (raw) => {
        const message = parseFromSandbox(raw);
        if (message?.type === "ready" && this.stateValue === "starting") {
          this.setState("idle");
          resolve();
        } else if (message !== null) {
          this.receive(message);
        }
      });
      child.once("exit", (code, signal) => {
        this.setState("dead");
        // The cgroup's OOM counter (or V8's own message) says whether memory ended it, not the exit code.
        void process
          .wasOutOfMemory()
          .catch(() => false)
          .then((cgroupOom) => {
            const outOfMemory = cgroupOom || heapOutOfMemory.test(this.stderrTail);
            const reason = this.describeExit(code, signal, outOfMemory);
            reject(new Error(reason));
            this.pending?.resolve({ type: "exited", reason, outOfMemory, log: this.stderrTail });
            this.pending = null;
            return process.dispose();
          })
          .catch(() => {})
          .finally(exitedResolve);
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

  /** Kills every process of the sandbox at once; `exited` resolves when it is gone. */
  kill(): void {
    if (this.stateValue !== "dead") this.setState("draining");
    this.process.kill();
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
        this.reusable &&= message.reusable;
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
    if (this.process.child.connected) this.process.child.send(message);
  }

  private setState(next: SandboxState): void {
    if (this.stateValue === "dead") return;
    this.stateValue = next;
  }

  private describeExit(code: number | null, signal: NodeJS.Signals | null, outOfMemory: boolean): string {
    if (outOfMemory) return "the sandbox ran out of memory and was killed";
    const loadFailure = /kiln: the function failed to load: (.*)/.exec(this.stderrTail);
    if (loadFailure?.[1] !== undefined) return `the function failed to load: ${loadFailure[1]}`;
    return signal !== null
      ? `the sandbox process was killed by ${signal}`
      : `the sandbox process exited with code ${code}`;
  }
}
