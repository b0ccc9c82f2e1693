/**
 * The `Store` port: durable state of functions, revisions and tasks, shaped by what the dispatcher and
 * the API need rather than by one database. Adapters: `sqlite/` (embedded, one node) and `postgres/`
 * (shared by many nodes). Every method that changes state resolves only once the change is committed.
 */
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";
import type { Lane } from "../domain/lane.js";
import type { Attempt, Failure, Priority, Progress, Task, TaskState } from "../domain/task.js";

export interface FunctionRecord {
  project: string;
  name: string;
  currentRevision: string;
  /** The spec of the current revision. */
  spec: RevisionSpec;
  settings: FunctionSettings;
  createdAt: Date;
  updatedAt: Date;
}

export interface RevisionRecord {
  digest: string;
  spec: RevisionSpec;
  sizeBytes: number;
  createdAt: Date;
}

export interface DeployInput {
  project: string;
  name: string;
  digest: string;
  spec: RevisionSpec;
  /** The packed code (tar.gz), kept so any node can unpack the revision. */
  archive: Uint8Array;
  /**
   * Settings from the function's manifest. Those it names replace the function's current ones (or the
   * defaults, for a new function); `env` is merged over the env the function already has.
   */
  settings: Partial<FunctionSettings>;
  now: Date;
}

export interface DeployResult {
  function: FunctionRecord;
  revision: RevisionRecord;
  /** False when the content equals the current revision's: nothing changed but the settings. */
  created: boolean;
}

export type { Lane } from "../domain/lane.js";

export interface NewTask {
  id: string;
  project: string;
  functionName: string;
  revision: string;
  priority: Priority;
  /** The payload as JSON text. */
  payload: string;
  label: string | null;
  idempotencyKey: string | null;
  timeoutS: number;
  createdAt: Date;
  /** Equal to `createdAt` unless delayed. */
  runAt: Date;
  /** Where to POST the task's outcome once it ends; null for none. */
  callbackUrl: string | null;
  /** A caller waits on it (a sync invoke): its start and end are announced to every node. */
  awaited?: boolean;
}

/** A task's outcome waiting to be POSTed to its callback URL. */
export interface DueCallback {
  task: Task;
  url: string;
  /** Deliveries tried so far. */
  attempts: number;
}

export interface EnqueueResult {
  task: Task;
  /** False when an earlier task holds the same idempotency key: `task` is that one. */
  created: boolean;
}

/** `priority`: highest first, FIFO within a priority. `oldest`: FIFO whatever the priority. */
export type ClaimOrder = "priority" | "oldest";

export interface ClaimOptions {
  /** Default `priority`. */
  order?: ClaimOrder;
  /**
   * The most tasks of the function that may run at once, on all nodes together: the claim takes fewer
   * than asked when the function is near it. 0 (the default) for no limit.
   */
  maxConcurrency?: number;
}

export interface ClaimedTask {
  id: string;
  lane: Lane;
  /** JSON text. */
  payload: string;
  priority: Priority;
  timeoutS: number;
  /** The number of the attempt this claim starts (1 for the first). */
  attempt: number;
  /** Earlier attempts that count against the function's retries. */
  chargedAttempts: number;
  startedAt: Date;
}

/** The end of one attempt and where the task goes next (decided by the dispatcher's retry policy). */
export interface AttemptEnd {
  taskId: string;
  attempt: number;
  startedAt: Date;
  finishedAt: Date;
  outcome: Attempt["outcome"];
  failure: Failure | null;
  /** JSON text, for a succeeded attempt. */
  result: string | null;
  /** What the attempt wrote to stdout/stderr (already bounded). */
  log: string;
  next: { state: "delayed"; runAt: Date } | { state: Exclude<TaskState, "delayed" | "queued" | "running"> };
}

export interface TaskQuery {
  project: string;
  functionName?: string;
  state?: TaskState;
  label?: string;
  limit: number;
  /** Opaque, from a previous page's `nextCursor`. */
  cursor?: string;
}

export interface TaskPage {
  tasks: Task[];
  nextCursor: string | null;
}

export interface Store {
  ensureProject(name: string, now: Date): Promise<void>;
  hasProject(name: string): Promise<boolean>;

  deployRevision(input: DeployInput): Promise<DeployResult>;
  getFunction(project: string, name: string): Promise<FunctionRecord | null>;
  listFunctions(project: string): Promise<FunctionRecord[]>;
  /** Functions of every project that ask for warm sandboxes (`minWarm` > 0), for a node starting up. */
  listWarmFunctions(): Promise<FunctionRecord[]>;
  updateFunctionSettings(
    project: string,
    name: string,
    settings: FunctionSettings,
    now: Date,
  ): Promise<FunctionRecord | null>;
  listRevisions(project: string, name: string): Promise<RevisionRecord[]>;
  /** Makes an earlier revision current again; null when the function has no such revision. */
  setCurrentRevision(
    project: string,
    name: string,
    digest: string,
    now: Date,
  ): Promise<FunctionRecord | null>;
  getRevisionArchive(digest: string): Promise<Uint8Array | null>;

  /** Commits the tasks (all or none) before resolving: accepted means durable. */
  enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]>;
  /**
   * Enqueues like `enqueueTasks` and, in the same commit, claims up to `claim.limit` queued tasks of
   * `claim.lane` as `claimTasks` would: a task that can start at once costs one commit, not two.
   * The returned tasks show the claimed ones as `running`.
   */
  enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: {
      lane: Lane;
      limit: number;
      now: Date;
      maxConcurrency?: number;
      /**
       * false: the commit may skip the fsync (SQLite commits at once at `synchronous = NORMAL`, which a
       * crash of the process survives and one of the machine may not). For sync invokes, whose caller
       * waits and retries on failure. Default true. PostgreSQL ignores it.
       */
      durable?: boolean;
    },
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }>;
  /**
   * Starts up to `limit` queued tasks of `lane`, never more than one claim per task however many nodes
   * claim at once. Their start is made durable by the next commit (see the adapter); a crash before then
   * runs them again.
   */
  claimTasks(lane: Lane, limit: number, now: Date, options?: ClaimOptions): Promise<ClaimedTask[]>;
  /** Records attempt ends; an end whose attempt is no longer the task's running one is ignored (fencing). */
  finishAttempts(ends: AttemptEnd[]): Promise<void>;
  /** Records a running task's progress; the latest write wins. */
  updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void>;
  /** Moves delayed tasks whose run time has come to `queued` and names the lanes they joined. */
  releaseDueTasks(now: Date): Promise<Lane[]>;
  /** The earliest run time of a delayed task, for the dispatcher's timer. */
  nextRunAt(): Promise<Date | null>;
  /** Lanes that have queued tasks (after a restart). */
  listReadyLanes(): Promise<Lane[]>;
  /**
   * Ends every attempt left `running` by a previous life of this node as `lost`: the task is queued
   * again, or ends `failed` once it has been lost `maxLostAttempts` times. Returns how many were lost.
   */
  recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number>;
  /**
   * Queues again attempts this node started and gives up before they ended (a graceful stop whose grace
   * ran out): they leave no attempt behind, are neither charged nor `lost`, and the attempt number goes
   * back, so the next claim runs the same attempt again. Like an end, it applies only to the attempt
   * that is still the task's running one. Returns how many were handed back.
   */
  handBackTasks(attempts: { taskId: string; attempt: number }[]): Promise<number>;
  /** Cancels a task that has not started; returns the task as it is afterwards (null if unknown). */
  cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null>;
  /** Queues a finished task again for a new attempt; returns it as it is afterwards (null if unknown). */
  requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null>;

  /**
   * Takes the outcomes whose callback is due at `now` (oldest first, at most `limit`) for one delivery:
   * they are not due again, for this node or another, before `now + leaseMs`.
   */
  claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]>;
  /** The earliest time a pending callback is due, for the sender's timer. */
  nextCallbackAt(): Promise<Date | null>;
  /** Records a delivery: `delivered`, or tried again at `retryAt`, or `failed` for good (retryAt null). */
  recordCallbackAttempt(taskId: string, outcome: { delivered: boolean; retryAt: Date | null }): Promise<void>;

  getTask(project: string, id: string): Promise<Task | null>;
  /**
   * Reads the task like `getTask` and marks it awaited: from then on, every node hears when it starts
   * and when it ends, so a caller waiting on one node learns the outcome of a run on another.
   */
  watchTask(project: string, id: string): Promise<Task | null>;
  listTasks(query: TaskQuery): Promise<TaskPage>;
  /** The task's stdout/stderr over all its attempts; null for an unknown task. */
  getTaskLog(project: string, id: string): Promise<string | null>;

  close(): Promise<void>;
}

/**
 * The database cannot be reached (restarting, connection dropped). The call may succeed once it is
 * back; a change whose commit was cut off may or may not have been made.
 */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the database is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = "StoreUnavailableError";
  }
}

/**
 * The database refuses writes: the disk holding it is full, or it (or its directory) is read-only.
 * The refused change was rolled back whole; writes work again once space is freed or the directory is
 * writable. Callers that retry an unavailable store retry this too.
 */
export class StoreWriteRefusedError extends StoreUnavailableError {
  constructor(
    readonly reason: "full" | "read_only",
    cause: unknown,
  ) {
    super(cause);
    this.name = "StoreWriteRefusedError";
    this.message =
      reason === "full"
        ? "the disk holding the data directory is full: nothing was written; free some space and retry"
        : "the data directory is read-only: nothing was written; make it writable and retry";
  }
}
