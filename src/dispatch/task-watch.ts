/**
 * Callers waiting on tasks: a synchronous invocation until its task starts (admission) and until it
 * ends, a long poll until it ends. They are woken the moment this node, or another (through the
 * cluster's notifications), sees it happen; `recheck` makes up for a notification that got lost.
 */
import { isFinal, type Task } from "../domain/task.js";
import type { Store } from "../store/store.js";
import { TaskWaiters } from "./task-waiters.js";

export interface TaskWatchOptions {
  store: Store;
  /** Sandboxes of the task's lane starting on this node or on their way to it (the room waitlist): capacity coming. */
  startingFor(task: Task): number;
  /** A task admission gave up on was cancelled. */
  onCancelled(taskId: string): void;
  /** The task is claimed ahead in a local queue of this node and has not started: still pending. */
  holdsUnstarted(taskId: string): boolean;
  /** Hands such a task back (queued again); false when this node no longer holds it unstarted. */
  releaseUnstarted(taskId: string): Promise<boolean>;
}

export class TaskWatch {
  private readonly starts = new TaskWaiters();
  private readonly ends = new TaskWaiters();
  private stopped = false;

  constructor(private readonly options: TaskWatchOptions) {}

  started(taskId: string): void {
    this.starts.notify(taskId);
  }

  ended(taskId: string): void {
    this.ends.notify(taskId);
  }

  /** Every waiter reads its task again. */
  recheck(): void {
    this.starts.releaseAll();
    this.ends.releaseAll();
  }

  /** The node is stopping: every waiter gets its task as it is now. */
  stop(): void {
    this.stopped = true;
    this.recheck();
  }

  /**
   * Admission of a synchronous invocation: resolves true once the task has started, or false when it
   * could not start within `admissionMs` — it is then cancelled, so no work is left behind for a caller
   * who was told to come back later. A sandbox of its lane that is still starting (a cold start) is
   * capacity on its way: then the task may wait up to `coldStartMs` more.
   */
  async admit(project: string, id: string, admissionMs: number, coldStartMs = 2000): Promise<boolean> {
    const { store } = this.options;
    let deadline = Date.now() + admissionMs;
    let extended = false;
    for (;;) {
      // Registered before the read, so a start between the two is not missed.
      const waiter = this.starts.wait(id, Math.max(0, deadline - Date.now()));
      const task = await store.watchTask(project, id);
      if (task === null || !(isPending(task) || this.options.holdsUnstarted(id))) {
        waiter.cancel();
        return task !== null;
      }
      if (Date.now() < deadline && !this.stopped) {
        await waiter.finished;
        continue;
      }
      waiter.cancel();
      if (!extended && !this.stopped && this.options.startingFor(task) > 0) {
        extended = true;
        deadline = Date.now() + coldStartMs;
        continue;
      }
      // Claimed ahead here and still waiting for a sandbox: queued again first, so it can be cancelled.
      await this.options.releaseUnstarted(id);
      const cancelled = await store.cancelPendingTask(project, id, new Date());
      if (cancelled?.state !== "cancelled") return true;
      this.ends.notify(id);
      this.options.onCancelled(id);
      return false;
    }
  }

  /** Resolves with the task once it is final, or as it is after `timeoutMs`. */
  async waitForTask(project: string, id: string, timeoutMs: number): Promise<Task | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiter = this.ends.wait(id, Math.max(0, deadline - Date.now()));
      const task = await this.options.store.watchTask(project, id);
      if (task === null || isFinal(task.state) || Date.now() >= deadline || this.stopped) {
        waiter.cancel();
        return task;
      }
      await waiter.finished;
    }
  }
}

function isPending(task: Task): boolean {
  return task.state === "queued" || task.state === "delayed";
}
