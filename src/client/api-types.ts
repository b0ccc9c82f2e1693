/**
 * The resources of the Kiln HTTP API as the client sees them (docs/api.md). Times stay the ISO 8601
 * strings the server sends: the client does not turn them into `Date`s, so a value read from the API
 * can be stored or sent back unchanged.
 */

/** An ISO 8601 timestamp as sent by the server, e.g. `"2025-03-01T12:00:00.000Z"`. */
export type IsoTimestamp = string;

/** Every state a task can be in; the last five are final. */
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

/** Higher runs first: 0 (the default), 1 or 2. */
export type Priority = 0 | 1 | 2;

/** Why an attempt did not succeed. `lost` means the node running it went away. */
export type FailureKind = "handler_error" | "timeout" | "out_of_memory" | "crashed" | "cancelled" | "lost";

export interface Failure {
  kind: FailureKind;
  message: string;
  stack?: string;
  /** False when the handler marked the failure as permanent: no retry follows. */
  retryable: boolean;
}

/** One try of a task in a sandbox. */
export interface Attempt {
  /** 1 for the first attempt. */
  number: number;
  startedAt: IsoTimestamp;
  finishedAt: IsoTimestamp;
  outcome: "succeeded" | FailureKind;
  failure?: Failure;
}

/** Progress a running handler reported. */
export interface Progress {
  percent: number;
  message?: string;
}

/** One request to run a function with a payload. */
export interface Task {
  id: string;
  project: string;
  /** The function's name. */
  function: string;
  /** The digest of the revision the task runs. */
  revision: string;
  state: TaskState;
  /** The task's priority; 3 is the class of synchronous invocations (`invoke`), which no input can ask for. */
  priority: Priority | 3;
  payload: unknown;
  label: string | null;
  idempotencyKey: string | null;
  timeoutS: number;
  createdAt: IsoTimestamp;
  /** When the task may first run (later than `createdAt` for a delayed task). */
  runAt: IsoTimestamp;
  startedAt: IsoTimestamp | null;
  finishedAt: IsoTimestamp | null;
  /** Milliseconds from `runAt` to the start of the first attempt. */
  startLatencyMs: number | null;
  attempts: Attempt[];
  /** The handler's return value, once the task succeeded. */
  result: unknown;
  failure: Failure | null;
  progress: Progress | null;
  /** Set on the answer to a create: false when an `idempotencyKey` matched an existing task. */
  created?: boolean;
}

/** What to run: the body of `createTask`. */
export interface TaskInput {
  /** The function's name. */
  function: string;
  /** Any JSON value; handed to the handler as is. */
  payload?: unknown;
  /** Default 0. */
  priority?: Priority;
  /** Seconds before the task may run, 0..604800. Default 0. */
  delayS?: number;
  /** Seconds an attempt may take, 1..3600. Default: the function's `timeoutS`. */
  timeoutS?: number;
  label?: string;
  /** A repeated key returns the existing task instead of creating another. */
  idempotencyKey?: string;
  /** Kiln POSTs the task's outcome here once it ends, signed with the node's callback secret, retried until delivered. */
  callbackUrl?: string;
}

/** How `invoke` waits; the server validates the values. */
export interface InvokeOptions {
  /**
   * Seconds to wait for the result before answering `pending` (0..3600; default 30). The server caps
   * it at its `KILN_MAX_INVOKE_WAIT_S` (default 60).
   */
  waitS?: number;
  /** Seconds the attempt may take, 1..3600. Default: the function's `timeoutS`. */
  timeoutS?: number;
  /** Cancel the task if the connection closes before the answer is sent. Default false. */
  cancelOnDisconnect?: boolean;
}

/** What `invoke` resolves with; a failure, a timeout or no room throw `KilnApiError` instead. */
export type InvokeOutcome = InvokeSucceeded | InvokePending;

/** The function returned within the wait. */
export interface InvokeSucceeded {
  status: "succeeded";
  /** The handler's return value: parsed JSON, or the string itself when the handler returned a string. */
  result: unknown;
  taskId: string;
  /** The attempt that succeeded: 1 unless the function retried within the wait. */
  attempt: number;
  /** Milliseconds from the task's creation (the request) to its first start; null if the server did not say. */
  startLatencyMs: number | null;
}

/** The task outlived the wait; it keeps running. Follow it with `waitForTask(task.id)`. */
export interface InvokePending {
  status: "pending";
  /** The task as it was when the wait ended (`queued`, `running`, or `delayed` before a retry). */
  task: Task;
  /** The path (no origin) of a route that waits for the task: `/v1/projects/{project}/tasks/{id}/wait`. */
  resultUrl: string;
}

export interface Backoff {
  type: "fixed" | "exponential";
  /** Delay before the first retry. */
  delayMs: number;
  /** Upper bound of any delay. */
  maxDelayMs: number;
}

/** A named code package with its settings. Env values are never returned, only their keys. */
export interface KilnFunction {
  project: string;
  name: string;
  /** The digest of the revision new tasks run. */
  currentRevision: string;
  runtime: "node" | "exec";
  entry: string | string[];
  /** Memory limit in MiB (node: the V8 heap limit), 64..4096. */
  memoryMb: number;
  /** Seconds an attempt may take, 1..3600. */
  timeoutS: number;
  /** Tasks of this function that may run at once; 0 means no limit. */
  maxConcurrency: number;
  /** Retries after a failed attempt, 0..10. */
  retries: number;
  backoff: Backoff;
  envKeys: string[];
  paused: boolean;
  /** Sandboxes kept started for the current revision even when idle. */
  minWarm: number;
  /** A fresh sandbox for every task. */
  singleUse: boolean;
  createdAt: IsoTimestamp;
  updatedAt: IsoTimestamp;
}

/** Settings `updateFunction` may change. `env` replaces the whole map. */
export interface FunctionPatch {
  memoryMb?: number;
  timeoutS?: number;
  maxConcurrency?: number;
  retries?: number;
  backoff?: Backoff;
  env?: Record<string, string>;
  paused?: boolean;
  minWarm?: number;
  singleUse?: boolean;
}

/** One immutable upload of a function's code. */
export interface Revision {
  /** sha256 of the code's files (paths, modes and contents), independent of how they were packed. */
  digest: string;
  runtime: "node" | "exec";
  entry: string | string[];
  sizeBytes: number;
  createdAt: IsoTimestamp;
  /** True for the function's current revision. */
  current: boolean;
}

export interface DeployResult {
  function: KilnFunction;
  revision: Revision;
  /** False when the upload had the same content as the current revision. */
  created: boolean;
}

/** The answer of `GET /healthz`. */
export interface Health {
  status: string;
  /** How this node isolates sandboxes, e.g. `"process"`. */
  isolation: string;
}

export interface TaskQuery {
  function?: string;
  state?: TaskState;
  label?: string;
  /** 1..1000, default 100. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

export interface TaskPage {
  /** Newest first. */
  tasks: Task[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

/** A named group of functions, tasks and tokens; every server has `default`. */
export interface Project {
  name: string;
  /** What the project is for; `""` when none was given. */
  description: string;
  /** The plan the project is on, whose limits its functions and tasks are held to; null: none. */
  plan: string | null;
  createdAt: IsoTimestamp;
  updatedAt: IsoTimestamp;
}

/** What `updateProject` may change; a field left out stays as it is. */
export interface ProjectPatch {
  /** At most 500 characters; `""` clears it. */
  description?: string;
  /** Puts the project on the plan of this name; null takes it off its plan. */
  plan?: string | null;
}

/** A project as `getProject` shows it: with its plan's limits and what it holds now. */
export interface ProjectWithUsage extends Project {
  /** The plan the project is on, with its limits; null when it is on none (no limits). */
  limits: Plan | null;
  usage: {
    functions: number;
    /** Queued, delayed or running tasks: a project that has any cannot be deleted without cancelling them. */
    unfinishedTasks: number;
  };
}

/**
 * The limits of a plan; null means not set. Only these three exist so far: concurrency, queue length
 * and request rate per project are not part of plans yet.
 */
export interface PlanLimits {
  /** The most memory (MiB) a function of a project on the plan may ask for, 64..4096. */
  maxMemoryMb: number | null;
  /** The longest timeout (seconds) a function or one of its tasks may have, 1..3600. */
  maxTimeoutS: number | null;
  /** The largest task payload (bytes of JSON), 1..1073741824; the node's own limit still applies. */
  maxPayloadBytes: number | null;
}

/** A named set of limits that projects are put on (`updateProject(name, { plan })`). */
export interface Plan extends PlanLimits {
  name: string;
  createdAt: IsoTimestamp;
  updatedAt: IsoTimestamp;
}

/** A plan as `getPlan` shows it: with the projects on it. */
export interface PlanWithProjects extends Plan {
  /** The names of the projects on the plan. */
  projects: string[];
}

/** Every role a token can have, the most powerful first. */
export const tokenRoles = ["admin", "deploy", "run", "read"] as const;

/**
 * What a token may do. `admin`: everything, in every project. The others only in their project, each
 * allowing what the ones after it do: `deploy` (deploy, change and roll back functions), `run` (create,
 * cancel and retry tasks, invoke), `read` (read the project, its functions and tasks).
 */
export type TokenRole = (typeof tokenRoles)[number];

/** A token kept by the server. Its secret is never listed: only `createToken`'s answer holds it. */
export interface ApiToken {
  /** `tok_…`: pass to `revokeToken`. */
  id: string;
  name: string;
  role: TokenRole;
  /** The project a `deploy`, `run` or `read` token works in; null for an admin token. */
  project: string | null;
  createdAt: IsoTimestamp;
  /** Null when it never expires. */
  expiresAt: IsoTimestamp | null;
  /** Recorded at most once a minute per node, so up to a minute late. Null if never used. */
  lastUsedAt: IsoTimestamp | null;
  /** Null until revoked; a revoked token stays listed. */
  revokedAt: IsoTimestamp | null;
}

/** The body of `createToken`. */
export interface TokenInput {
  /** A name to know the token by, 1..100 characters. */
  name: string;
  role: TokenRole;
  /** The project the token works in: required for `deploy`, `run` and `read`, refused for `admin`. */
  project?: string;
  /** Seconds until it expires, 60..315,360,000 (10 years). Default: never. */
  expiresInS?: number;
}

/** What `createToken` resolves with. */
export interface CreatedToken {
  token: ApiToken;
  /** The bearer token itself (`kiln_t_…`). The server keeps only its SHA-256: it cannot show it again. */
  secret: string;
}
