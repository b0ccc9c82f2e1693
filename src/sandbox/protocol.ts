/**
 * Messages between a node and a sandbox, one discriminated union each way, sent as frames on the
 * sandbox's fd 3 (`frame-codec.ts`). The node parses what arrives from a sandbox (it runs untrusted
 * code) before acting on it.
 */

/** The sandbox's end of the channel to its node. */
export const channelFd = 3;

export interface SandboxFailure {
  kind: "handler_error" | "crashed";
  message: string;
  stack?: string;
  retryable: boolean;
}

/** What the harness needs to start; passed as its only argument (JSON), never through the environment. */
export interface HarnessConfig {
  runtime: "node" | "exec";
  codeDir: string;
  entry: string[];
  tmpDir: string;
  /** A directory outside `tmpDir` where the harness writes each payload for `exec` functions. */
  ioDir: string;
  maxResultBytes: number;
  maxLogBytes: number;
}

/**
 * The largest frame a node accepts from a sandbox: a `done` with the largest result and log, both
 * escaped inside JSON strings (a quote doubles; a control character in a log becomes six bytes), and
 * room for the rest.
 */
export function computeMaxFrameBytes(limits: { maxResultBytes: number; maxLogBytes: number }): number {
  return 2 * limits.maxResultBytes + 6 * limits.maxLogBytes + 64 * 1024;
}

/** The most a sandbox may send during one task (progress included): a few of the largest frames. */
export function computeMaxTaskChannelBytes(limits: { maxResultBytes: number; maxLogBytes: number }): number {
  return 4 * computeMaxFrameBytes(limits);
}

export type ToSandbox =
  | { type: "run"; taskId: string; attempt: number; payload: string; deadline: number }
  | { type: "abort"; taskId: string; reason: "timeout" | "cancel" };

export type FromSandbox =
  | { type: "ready" }
  | { type: "progress"; taskId: string; percent: number; message?: string }
  | {
      type: "done";
      taskId: string;
      /** JSON text of the result when the handler succeeded. */
      result: string | null;
      failure: SandboxFailure | null;
      log: string;
      rssBytes: number;
      /** False when the task left the sandbox dirty (say, an open file holding /tmp space): replace it. */
      reusable: boolean;
    };

/** Validates a message from a sandbox: the message, or what is wrong with it. */
export function parseFromSandbox(value: unknown): FromSandbox | { invalid: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { invalid: "it is not an object" };
  }
  const message = value as Record<string, unknown>;
  switch (message.type) {
    case "ready":
      return { type: "ready" };
    case "progress":
      if (typeof message.taskId !== "string" || typeof message.percent !== "number") {
        return { invalid: "a progress message needs a taskId string and a percent number" };
      }
      return {
        type: "progress",
        taskId: message.taskId,
        percent: Number.isFinite(message.percent) ? Math.min(100, Math.max(0, message.percent)) : 0,
        ...(typeof message.message === "string" ? { message: message.message.slice(0, 1000) } : {}),
      };
    case "done":
      return parseDone(message);
    default:
      return { invalid: `unknown message type ${JSON.stringify(String(message.type)).slice(0, 60)}` };
  }
}

function parseDone(message: Record<string, unknown>): FromSandbox | { invalid: string } {
  const { taskId, result, failure, log, rssBytes, reusable } = message;
  if (typeof taskId !== "string" || typeof log !== "string") {
    return { invalid: "a done message needs a taskId string and a log string" };
  }
  if (typeof rssBytes !== "number" || !Number.isFinite(rssBytes) || rssBytes < 0) {
    return { invalid: "a done message needs rssBytes, a number of bytes" };
  }
  const parsedFailure = failure === null ? null : parseFailure(failure);
  if (parsedFailure === undefined)
    return { invalid: "its failure is not {kind, message, stack?, retryable}" };
  const resultText = typeof result === "string" ? result : null;
  if ((parsedFailure === null) !== (resultText !== null) || (resultText === null && result !== null)) {
    return { invalid: "a done message needs either a result string or a failure" };
  }
  return {
    type: "done",
    taskId,
    result: resultText,
    failure: parsedFailure,
    log,
    rssBytes,
    reusable: reusable === true,
  };
}

function parseFailure(value: unknown): SandboxFailure | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const failure = value as Record<string, unknown>;
  if (typeof failure.message !== "string") return undefined;
  return {
    kind: failure.kind === "crashed" ? "crashed" : "handler_error",
    message: failure.message,
    ...(typeof failure.stack === "string" ? { stack: failure.stack } : {}),
    retryable: failure.retryable !== false,
  };
}
