/** The Kiln SDK. Start with `createClient`. */
export { createClient, isTaskFinal, maxTasksPerRequest } from "./client.js";
export type { ClientOptions, KilnClient } from "./client.js";
export { KilnApiError } from "./kiln-api-error.js";
export { packFunction } from "./pack-function.js";
export { taskStates, tokenRoles } from "./api-types.js";
export type {
  ApiToken,
  Attempt,
  Backoff,
  CreatedToken,
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
  Plan,
  PlanLimits,
  PlanWithProjects,
  Priority,
  Progress,
  Project,
  ProjectPatch,
  ProjectWithUsage,
  Revision,
  Task,
  TaskInput,
  TaskPage,
  TaskQuery,
  TaskState,
  TokenInput,
  TokenRole,
} from "./api-types.js";
