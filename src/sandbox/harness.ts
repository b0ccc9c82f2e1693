/**
 * The harness: the small program that runs inside a sandbox process, receives tasks from its node as
 * frames on fd 3, calls the user's code and reports the outcome. It imports nothing heavy so a sandbox
 * starts fast. It shares its process with user code, so the node trusts nothing it sends and cleans
 * up after each task from outside.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { format } from "node:util";
import { getHeapStatistics } from "node:v8";
import { encodeFrame, FrameDecoder } from "./frame-codec.js";
import {
  channelFd,
  type FromSandbox,
  type HarnessConfig,
  type SandboxFailure,
  type ToSandbox,
} from "./protocol.js";
import { TaskLog } from "./task-log.js";

type Handler = (payload: unknown, ctx: TaskContext) => unknown;

/** What a `node` handler receives as its second argument. */
export interface TaskContext {
  taskId: string;
  attempt: number;
  deadline: Date;
  signal: AbortSignal;
  tmpdir: string;
  log: (...values: unknown[]) => void;
  progress: (percent: number, message?: string) => void;
}

interface RunningTask {
  taskId: string;
  controller: AbortController;
  /** Fails the task with an error its own code raised outside the handler's promise. */
  failWith: (error: unknown) => void;
}

/** Frames from the node: it is trusted, and a payload may be large. */
const maxFrameFromNodeBytes = 0xffff_ffff;
/** How long an `exec` command's stdout may still deliver after the command exited. */
const stdoutDrainMs = 100;

const config = JSON.parse(process.argv[2] ?? "{}") as HarnessConfig;
const log = new TaskLog(config.maxLogBytes);
const channel = new Socket({ fd: channelFd, readable: true, writable: true });
/** Which task's code is running: an error raised later still names the task that caused it. */
const taskScope = new AsyncLocalStorage<string>();
let running: RunningTask | null = null;
/** An error escaped a task after it ended: the sandbox is replaced after the task that runs now. */
let tainted = false;

function send(message: FromSandbox): void {
  channel.write(encodeFrame(message));
}

/**
 * Errors nobody caught. One raised by the running task's own code fails that task; one left behind by
 * an earlier task does not fail the next one, but the sandbox is not reused after it.
 */
function onUncaught(what: string, error: unknown): void {
  tainted = true;
  const owner = taskScope.getStore();
  if (running !== null && owner === running.taskId) {
    running.failWith(error);
  } else if (owner === undefined && running === null) {
    process.stderr.write(`kiln: ${what} outside any task: ${describe(error)}\n`);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : format("%O", error);
}

// While a task runs, whatever it prints belongs to its log.
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = (chunk: unknown, ...rest: unknown[]) => {
    if (running === null) return write(chunk, ...rest);
    log.append(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString());
    const callback = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
    callback?.();
    return true;
  };
}

async function loadHandler(): Promise<Handler | null> {
  if (config.runtime === "exec") return null;
  const modulePath = path.resolve(config.codeDir, config.entry[0] ?? "index.js");
  const loaded = (await import(pathToFileURL(modulePath).href)) as { default?: unknown };
  if (typeof loaded.default !== "function") {
    throw new Error(`${config.entry[0]} has no default export function`);
  }
  return loaded.default as Handler;
}

function toFailure(error: unknown): SandboxFailure {
  if (error instanceof Error) {
    const retryable = (error as { retryable?: unknown }).retryable !== false;
    return {
      kind: "handler_error",
      message: error.message,
      ...(error.stack ? { stack: error.stack } : {}),
      retryable,
    };
  }
  return { kind: "handler_error", message: format("non-error thrown: %O", error), retryable: true };
}

async function runNode(handler: Handler, message: Extract<ToSandbox, { type: "run" }>, signal: AbortSignal) {
  const ctx: TaskContext = {
    taskId: message.taskId,
    attempt: message.attempt,
    deadline: new Date(message.deadline),
    signal,
    tmpdir: config.tmpDir,
    log: (...values) => log.append(`${format(...values)}\n`),
    progress: (percent, text) =>
      send({
        type: "progress",
        taskId: message.taskId,
        percent,
        ...(text === undefined ? {} : { message: text }),
      }),
  };
  const value = await handler(JSON.parse(message.payload) as unknown, ctx);
  return JSON.stringify(value ?? null);
}

async function runExec(message: Extract<ToSandbox, { type: "run" }>, signal: AbortSignal): Promise<string> {
  const payload = JSON.parse(message.payload) as unknown;
  const input = typeof payload === "string" ? payload : message.payload;
  const payloadFile = path.join(config.ioDir, "payload");
  await writeFile(payloadFile, input);
  const [command = "", ...args] = config.entry;
  const child = spawn(command, args, {
    cwd: config.codeDir,
    env: {
      ...process.env,
      KILN_PAYLOAD_FILE: payloadFile,
      KILN_TASK_ID: message.taskId,
      KILN_ATTEMPT: String(message.attempt),
      KILN_DEADLINE: new Date(message.deadline).toISOString(),
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  signal.addEventListener("abort", () => child.kill("SIGTERM"), { once: true });
  child.stdin.on("error", () => {}); // a command that never reads its stdin is fine
  child.stdout.on("error", () => {});
  child.stderr.on("error", () => {});
  child.stdin.end(input);
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;
  child.stdout.on("data", (chunk: Buffer) => {
    stdoutBytes += chunk.length;
    if (stdoutBytes <= config.maxResultBytes) stdout.push(chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => log.append(chunk.toString()));
  // The task ends when the command exits, not when every process holding its stdout has closed it:
  // a child it left in the background is killed by the node's reset.
  const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
  if (!child.stdout.closed) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, stdoutDrainMs);
      child.stdout.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  child.stdout.destroy();
  child.stderr.destroy();
  if (exit.code !== 0) {
    const how = exit.code === null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    throw new Error(`${config.entry.join(" ")} ${how}`);
  }
  if (stdoutBytes > config.maxResultBytes) throw resultTooLarge(stdoutBytes);
  const text = Buffer.concat(stdout).toString();
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return JSON.stringify(text);
  }
}

function resultTooLarge(bytes: number): Error {
  return Object.assign(new Error(`result is ${bytes} bytes, over the limit of ${config.maxResultBytes}`), {
    retryable: false,
  });
}

async function runTask(handler: Handler | null, message: Extract<ToSandbox, { type: "run" }>): Promise<void> {
  const controller = new AbortController();
  let failWith: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (failWith = reject));
  running = { taskId: message.taskId, controller, failWith };
  let result: string | null = null;
  let failure: SandboxFailure | null = null;
  try {
    const value = taskScope.run(message.taskId, () =>
      handler === null ? runExec(message, controller.signal) : runNode(handler, message, controller.signal),
    );
    result = await Promise.race([value, failed]);
    if (Buffer.byteLength(result) > config.maxResultBytes) throw resultTooLarge(Buffer.byteLength(result));
  } catch (error) {
    result = null;
    failure = toFailure(error);
  }
  running = null;
  send({
    type: "done",
    taskId: message.taskId,
    result,
    failure,
    log: log.take(),
    rssBytes: sampleRss(),
    reusable: !tainted,
  });
}

let tasksSinceRssSample = 0;
let lastRssBytes = 0;

/**
 * Reading the RSS costs a read of /proc; a no-op task would spend more on it than on itself. So the
 * sample is refreshed every 16 tasks, or after every task once the heap is over half the V8 limit.
 */
function sampleRss(): number {
  tasksSinceRssSample += 1;
  const { used_heap_size, heap_size_limit } = getHeapStatistics();
  if (tasksSinceRssSample >= 16 || used_heap_size > heap_size_limit / 2 || lastRssBytes === 0) {
    tasksSinceRssSample = 0;
    lastRssBytes = process.memoryUsage.rss();
  }
  return lastRssBytes;
}

function receive(message: ToSandbox, handler: Handler | null): void {
  switch (message.type) {
    case "run":
      runTask(handler, message).catch((error: unknown) => onUncaught("a failure of the harness", error));
      break;
    case "abort":
      if (running?.taskId === message.taskId) running.controller.abort(new Error(`task ${message.reason}`));
      break;
  }
}

async function main(): Promise<void> {
  process.on("uncaughtException", (error) => onUncaught("an uncaught exception", error));
  process.on("unhandledRejection", (error) => onUncaught("an unhandled promise rejection", error));
  // Without its node the sandbox has nothing to do.
  channel.on("error", () => process.exit(0));
  channel.on("end", () => process.exit(0));
  await mkdir(config.tmpDir, { recursive: true });
  await mkdir(config.ioDir, { recursive: true });
  const handler = await loadHandler();
  const decoder = new FrameDecoder(maxFrameFromNodeBytes, (text) =>
    receive(JSON.parse(text) as ToSandbox, handler),
  );
  channel.on("data", (chunk: Buffer) => decoder.push(chunk));
  send({ type: "ready" });
}

main().catch((error: unknown) => {
  // The node sees the exit before any "ready" and reports this text as the failed start's reason.
  process.stderr.write(`kiln: the function failed to load: ${describe(error)}\n`);
  process.exit(70);
});
