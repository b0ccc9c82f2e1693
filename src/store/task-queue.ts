/**
 * The `TaskQueue` port: what moves a task from state to state — enqueue, claim, the end of an attempt,
 * the release of delayed tasks, recovery of lost attempts, cancel and manual retry. Claims and ends are
 * the hot path: each is one statement for a whole batch.
 */
import type { Lane } from "../domain/lane.js";
import type { Attempt, Failure, Priority, Progress, Task, TaskState } from "../domain/task.js";

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
  /** Its outcome is to be POSTed to a callback URL: its end wakes the callback sender. */
  hasCallback: boolean;
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

/** What `enqueueAndClaimTasks` claims, and how. */
export interface EnqueueClaim {
  lane: Lane;
  limit: number;
  now: Date;
  maxConcurrency?: number;
  /**
   * false: the commit may skip the fsync (SQLite commits at once without flushing its WAL; PostgreSQL
   * inserts with `synchronous_commit = off`): a crash of the process survives it, one of the machine
   * may not. For sync invokes, whose caller waits and retries on failure. Default true.
   */
  durable?: boolean;
  /**
   * Hears the claimed tasks once committed, possibly before the commit is durable (SQLite flushes its
   * WAL off the event loop): they may start then. A crash before the flush loses the enqueue, which
   * its caller, not answered yet, makes again.
   */
  onClaimed?: (claimed: ClaimedTask[]) => void;
}

export interface TaskQueue {
  /**
   * Commits the tasks (all or none) before resolving: accepted means durable. Rejects with
   * `PROJECT_NOT_FOUND`, storing nothing, when a task's project does not exist (or was just deleted).
   */
  enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]>;
  /**
   * Enqueues like `enqueueTasks` and, in the same commit, claims up to `claim.limit` queued tasks of
   * `claim.lane` as `claimTasks` would: a task that can start at once costs one commit, not two.
   * The returned tasks show the claimed ones as `running`.
   */
  enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: EnqueueClaim,
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }>;
  /**
   * Starts up to `limit` queued tasks of `lane`, never more than one claim per task however many nodes
   * claim at once (none when the lane's project does not exist). Their start is made durable by the
   * next commit (see the adapter); a crash before then runs them again.
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
}
