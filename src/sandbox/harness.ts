/**
 * The harness: the small trusted program that runs inside a sandbox process, receives tasks from its
 * node over IPC, calls the user's code and reports the outcome. It imports nothing heavy so a sandbox
 * starts fast.
 */
import { spawn } from "node:child_process";
import { readdirSync, statfsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { format } from "node:util";
import { getHeapStatistics } from "node:v8";
import type { FromSandbox, HarnessConfig, SandboxFailure, ToSandbox } from "./protocol.js";
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
}

const config = JSON.parse(process.argv[2] ?? "{}") as HarnessConfig;
const log = new TaskLog(config.maxLogBytes);
let running: RunningTask | null = null;

function send(message: FromSandbox): void {
  process.send?.(message);
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
  child.stdin.end(input);
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;
  child.stdout.on("data", (chunk: Buffer) => {
    stdoutBytes += chunk.length;
    if (stdoutBytes <= config.maxResultBytes) stdout.push(chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => log.append(chunk.toString()));
  const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
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

/**
 * Processes a task started (even ones that called setsid) must not outlive it. In its own pid namespace,
 * kill(-1) reaches every process the harness may signal there but itself: exactly the task's leftovers.
 */
function killLeftoverProcesses(): void {
  try {
    process.kill(-1, "SIGKILL");
  } catch {
    // ESRCH: nothing was left
  }
}

/** Space a deleted file still holds through a descriptor the task left open does not come back. */
function isTmpReclaimed(): boolean {
  if (!config.privateTmpfs) return true;
  const { blocks, bfree, bsize } = statfsSync(config.tmpDir);
  return (blocks - bfree) * bsize <= 1024 * 1024;
}

/** Between tasks: a synchronous readdir of an (almost always) empty directory beats a thread-pool round trip. */
async function emptyTmpDir(): Promise<void> {
  const entries = readdirSync(config.tmpDir);
  if (entries.length === 0) return;
  await Promise.all(
    entries.map((entry) => rm(path.join(config.tmpDir, entry), { recursive: true, force: true })),
  );
}

async function runTask(handler: Handler | null, message: Extract<ToSandbox, { type: "run" }>): Promise<void> {
  const controller = new AbortController();
  running = { taskId: message.taskId, controller };
  let result: string | null = null;
  let failure: SandboxFailure | null = null;
  try {
    result =
      handler === null
        ? await runExec(message, controller.signal)
        : await runNode(handler, message, controller.signal);
    if (Buffer.byteLength(result) > config.maxResultBytes) throw resultTooLarge(Buffer.byteLength(result));
  } catch (error) {
    result = null;
    failure = toFailure(error);
  }
  running = null;
  if (config.ownPidNamespace) killLeftoverProcesses();
  await emptyTmpDir();
  send({
    type: "done",
    taskId: message.taskId,
    result,
    failure,
    log: log.take(),
    rssBytes: sampleRss(),
    reusable: isTmpReclaimed(),
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

async function main(): Promise<void> {
  await mkdir(config.tmpDir, { recursive: true });
  await mkdir(config.ioDir, { recursive: true });
  const handler = await loadHandler();
  process.on("message", (message: ToSandbox) => {
    switch (message.type) {
      case "run":
        void runTask(handler, message);
        break;
      case "abort":
        if (running?.taskId === message.taskId) running.controller.abort(new Error(`task ${message.reason}`));
        break;
    }
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready" });
}

main().catch((error: unknown) => {
  // The node sees the exit before any "ready" and reports this text as the failed start's reason.
  process.stderr.write(
    `kiln: the function failed to load: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(70);
});
