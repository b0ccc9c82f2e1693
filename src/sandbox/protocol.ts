/**
 * Messages between a node and a sandbox, one discriminated union each way. The node parses what
 * arrives from a sandbox (it runs untrusted code) before acting on it.
 */

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
  /** The sandbox is its own pid namespace: after each task, every process but the harness is killed. */
  ownPidNamespace: boolean;
  /** `tmpDir` is a file system of its own (a tmpfs): after each task, it must be back to empty. */
  privateTmpfs: boolean;
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

/** Validates a message from a sandbox; null when it is not one. */
export function parseFromSandbox(value: unknown): FromSandbox | null {
  if (typeof value !== "object" || value === null) return null;
  const message = value as Record<string, unknown>;
  switch (message.type) {
    case "ready":
      return { type: "ready" };
    case "progress":
      if (typeof message.taskId !== "string" || typeof message.percent !== "number") return null;
      return {
        type: "progress",
        taskId: message.taskId,
        percent: Math.min(100, Math.max(0, message.percent)),
        ...(typeof message.message === "string" ? { message: message.message.slice(0, 1000) } : {}),
      };
    case "done": {
      const { taskId, result, failure, log, rssBytes, reusable } = message;
      if (typeof taskId !== "string" || typeof log !== "string" || typeof rssBytes !== "number") return null;
      if (result !== null && typeof result !== "string") return null;
      const clean = reusable === true;
      return { type: "done", taskId, result, failure: parseFailure(failure), log, rssBytes, reusable: clean };
    }
    default:
      return null;
  }
}

function parseFailure(value: unknown): SandboxFailure | null {
  if (typeof value !== "object" || value === null) return null;
  const failure = value as Record<string, unknown>;
  return {
    kind: failure.kind === "crashed" ? "crashed" : "handler_error",
    message: typeof failure.message === "string" ? failure.message : "unknown error",
    ...(typeof failure.stack === "string" ? { stack: failure.stack } : {}),
    retryable: failure.retryable !== false,
  };
}
