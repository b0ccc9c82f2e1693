/**
 * One sandbox: a process started by a `SandboxBackend`, running the harness for one function revision.
 * It runs one task at a time and moves through `starting → idle ⇄ busy → draining → dead`, changed only
 * in `setState`.
 */
import { exceedsJsonDepth, maxJsonDepth } from "../domain/json-depth.js";
import type { Lane } from "../domain/lane.js";
import {
  computeMaxTaskChannelBytes,
  type FromSandbox,
  type SandboxFailure,
  type ToSandbox,
} from "../sandbox/protocol.js";
import type { SandboxExit, SandboxProcess } from "./sandbox-backend.js";

export type SandboxState = "starting" | "idle" | "busy" | "draining" | "dead";

/** How a task's run on a sandbox ended, as the sandbox saw it. */
export type SandboxOutcome =
  | { type: "done"; result: string | null; failure: SandboxFailure | null; log: string; rssBytes: number }
  | { type: "exited"; reason: string; outOfMemory: boolean; log: string }
  /** The sandbox broke the protocol: it was killed, and it will do the same again. */
  | { type: "malformed"; reason: string; log: string };

interface PendingRun {
  taskId: string;
  resolve: (outcome: SandboxOutcome) => void;
  onProgress: (percent: number, message?: string) => void;
}

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
  /** Why the node killed the sandbox for breaking the protocol, if it did. */
  private brokenReason: string | null = null;
  /** Bytes the sandbox sent since its current (or last) task started, whatever task they name. */
  private channelBytes = 0;
  private readonly limits: { maxResultBytes: number; maxLogBytes: number; maxTaskChannelBytes: number };

  constructor(
    options: { id: string; lane: Lane; maxResultBytes: number; maxLogBytes: number },
    private readonly process: SandboxProcess,
  ) {
    this.id = options.id;
    this.lane = options.lane;
    this.limits = { ...options, maxTaskChannelBytes: computeMaxTaskChannelBytes(options) };
    const { channel } = process;
    let exitedResolve: () => void = () => {};
    this.exited = new Promise((resolve) => (exitedResolve = resolve));
    this.ready = new Promise<void>((resolve, reject) => {
      channel.onMessage((message, frameBytes) => {
        if (message.type === "ready" && this.stateValue === "starting") {
          // Whatever the module's top-level code started or wrote is gone before the first task.
          this.resetThen(() => {
            if (this.stateValue !== "starting") return;
            if (!this.reusable) return this.fail("the sandbox could not be cleaned after its start");
            this.setState("idle");
            resolve();
          });
        } else {
          this.receive(message, frameBytes);
        }
      });
      channel.onMalformed((reason) => this.fail(`the sandbox sent a malformed message: ${reason}`));
      channel.onExit((exit) => {
        this.setState("dead");
        this.onExit(exit, reject).then(exitedResolve, exitedResolve);
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
    this.channelBytes = 0;
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

  private receive(message: FromSandbox, frameBytes: number): void {
    this.channelBytes += frameBytes;
    if (this.channelBytes > this.limits.maxTaskChannelBytes) {
      this.fail(
        `the sandbox sent more than ${this.limits.maxTaskChannelBytes} bytes to the node during one task`,
      );
      return;
    }
    const pending = this.pending;
    if (pending === null || message.type === "ready" || message.taskId !== pending.taskId) return;
    switch (message.type) {
      case "progress":
        pending.onProgress(message.percent, message.message);
        return;
      case "done": {
        // The exit of the process during the reset must not replace the outcome the task already has.
        this.pending = null;
        this.lastRssBytes = message.rssBytes;
        this.reusable &&= message.reusable;
        const outcome = this.bound(message);
        this.resetThen(() => {
          if (this.stateValue === "busy") this.setState("idle");
          pending.resolve(outcome);
        });
        return;
      }
    }
  }

  /** Resets the sandbox from outside, then continues; a reset that fails leaves it not reusable. */
  private resetThen(next: () => void): void {
    this.process
      .resetBetweenTasks()
      .then(
        (reset) => (this.reusable &&= reset.reusable),
        () => (this.reusable = false),
      )
      .finally(next)
      .catch(() => {});
  }

  /** Ends the running task (or the start) as broken and kills the sandbox. */
  private fail(reason: string): void {
    const pending = this.pending;
    this.pending = null;
    this.reusable = false;
    this.brokenReason ??= reason;
    this.kill();
    pending?.resolve({ type: "malformed", reason, log: "" });
  }

  private async onExit(exit: SandboxExit, rejectReady: (error: Error) => void): Promise<void> {
    // The cgroup's OOM counter (or V8's own message) says whether memory ended it, not the exit code.
    const cgroupOom = await this.process.wasOutOfMemory().catch(() => false);
    const outOfMemory = cgroupOom || heapOutOfMemory.test(exit.stderrTail);
    const reason = this.brokenReason ?? describeExit(exit, outOfMemory);
    rejectReady(new Error(reason));
    this.pending?.resolve({ type: "exited", reason, outOfMemory, log: exit.stderrTail });
    this.pending = null;
    await this.process.dispose().catch(() => {});
  }

  /**
   * The harness bounds results and logs, but it shares its process with user code: check again, and
   * store only a result that is JSON text nested no deeper than reads can serialise again.
   */
  private bound(message: Extract<FromSandbox, { type: "done" }>): SandboxOutcome {
    const { maxResultBytes, maxLogBytes } = this.limits;
    const log =
      message.log.length > maxLogBytes
        ? `${message.log.slice(0, maxLogBytes)}\n[kiln: log truncated]\n`
        : message.log;
    const { rssBytes } = message;
    const refusal = message.result === null ? null : refuseResult(message.result, maxResultBytes);
    if (refusal !== null) {
      return {
        type: "done",
        result: null,
        failure: { kind: "handler_error", message: refusal, retryable: false },
        log,
        rssBytes,
      };
    }
    return { type: "done", result: message.result, failure: message.failure, log, rssBytes };
  }

  private send(message: ToSandbox): void {
    this.process.channel.send(message);
  }

  private setState(next: SandboxState): void {
    if (this.stateValue === "dead") return;
    this.stateValue = next;
  }
}

function describeExit(exit: SandboxExit, outOfMemory: boolean): string {
  if (outOfMemory) return "the sandbox ran out of memory and was killed";
  const loadFailure = /kiln: the function failed to load: (.*)/.exec(exit.stderrTail);
  if (loadFailure?.[1] !== undefined) return `the function failed to load: ${loadFailure[1]}`;
  const notStarted = /kiln: the sandbox did not start: (.*)/.exec(exit.stderrTail);
  if (notStarted?.[1] !== undefined) return `the sandbox did not start: ${notStarted[1]}`;
  return exit.signal !== null
    ? `the sandbox process was killed by ${exit.signal}`
    : `the sandbox process exited with code ${exit.code}`;
}

/** Why a result cannot be stored, or null when it can. */
function refuseResult(result: string, maxResultBytes: number): string | null {
  if (Buffer.byteLength(result) > maxResultBytes)
    return `result is over the limit of ${maxResultBytes} bytes`;
  if (exceedsJsonDepth(result)) {
    return `the result nests arrays and objects deeper than ${maxJsonDepth} levels, the most allowed`;
  }
  try {
    JSON.parse(result);
  } catch {
    return "the sandbox sent a result that is not valid JSON text";
  }
  return null;
}
