/** Tasks, their states and attempts: the pure vocabulary shared by every layer. */

export const taskStates = [
  "delayed",
  "queued",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "out_of_memory",
  "cancelled",
] as const;
export type TaskState = (typeof taskStates)[number];

export const finalTaskStates: ReadonlySet<TaskState> = new Set([
  "succeeded",
  "failed",
  "timed_out",
  "out_of_memory",
  "cancelled",
]);

export function isFinal(state: TaskState): boolean {
  return finalTaskStates.has(state);
}

/**
 * Higher runs first. 0 is the batch class, 1 and 2 background; 3 (`syncPriority`) is reserved for
 * synchronous invocations, which a caller is waiting on.
 */
export type Priority = 0 | 1 | 2 | 3;

export const syncPriority = 3;

/** Why an attempt did not succeed. `lost` means the node running it went away. */
export type FailureKind = "handler_error" | "timeout" | "out_of_memory" | "crashed" | "cancelled" | "lost";

export interface Failure {
  kind: FailureKind;
  message: string;
  stack?: string;
  /** False when the handler said so (a serialised flag, not `instanceof`): no retry follows. */
  retryable: boolean;
}

export interface Attempt {
  number: number;
  startedAt: Date;
  finishedAt: Date;
  outcome: "succeeded" | FailureKind;
  failure?: Failure;
}

export interface Progress {
  percent: number;
  message?: string;
}

export interface Task {
  id: string;
  project: string;
  functionName: string;
  /** The revision the task runs: the function's current one when the task was created. */
  revision: string;
  state: TaskState;
  priority: Priority;
  payload: unknown;
  label: string | null;
  idempotencyKey: string | null;
  timeoutS: number;
  createdAt: Date;
  runAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Milliseconds from the time the task could first run to the start of its first attempt. */
  startLatencyMs: number | null;
  attempts: Attempt[];
  /** Attempts that ended `lost`; they do not count against the function's retries. */
  lostAttempts: number;
  result: unknown;
  failure: Failure | null;
  progress: Progress | null;
}

const maxMessageChars = 4096;
const maxStackChars = 16_384;

/** Failures cross a process boundary from user code: strip NUL bytes and bound their size. */
export function sanitizeFailure(failure: Failure): Failure {
  const clean = (text: string, max: number) => {
    const noNul = text.replaceAll("\u0000", "");
    return noNul.length > max ? `${noNul.slice(0, max)}… [truncated]` : noNul;
  };
  return {
    kind: failure.kind,
    message: clean(failure.message, maxMessageChars),
    ...(failure.stack === undefined ? {} : { stack: clean(failure.stack, maxStackChars) }),
    retryable: failure.retryable,
  };
}

/** The task state an attempt's outcome leads to when no retry follows. */
export function finalStateFor(outcome: Attempt["outcome"]): TaskState {
  switch (outcome) {
    case "succeeded":
      return "succeeded";
    case "timeout":
      return "timed_out";
    case "out_of_memory":
      return "out_of_memory";
    case "cancelled":
      return "cancelled";
    case "handler_error":
    case "crashed":
    case "lost":
      return "failed";
  }
}
