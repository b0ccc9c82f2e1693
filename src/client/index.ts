/** The Kiln SDK. Start with `createClient`. */
export { createClient, isTaskFinal, maxTasksPerRequest } from "./client.js";
export type { ClientOptions, KilnClient } from "./client.js";
export { KilnApiError } from "./kiln-api-error.js";
export { packFunction } from "./pack-function.js";
export { taskStates } from "./api-types.js";
export type {
  Attempt,
  Backoff,
  DeployResult,
  Failure,
  FailureKind,
  FunctionPatch,
  Health,
  InvokeOptions,
  InvokeOutcome,
  InvokePending,
  InvokeSucceeded,
  IsoTimestamp,
  KilnFunction,
  Priority,
  Progress,
  Revision,
  Task,
  TaskInput,
  TaskPage,
  TaskQuery,
  TaskState,
} from "./api-types.js";
