/**
 * Cancelling a task wherever it is: pending in the store, claimed ahead in a local queue of this node,
 * running in a sandbox here, or running on another node (which is asked to stop it).
 */
import type { Cluster } from "../cluster/cluster.js";
import { isFinal, type Task } from "../domain/task.js";
import type { Runner } from "../runner/runner.js";
import type { Store } from "../store/store.js";
import type { TaskWatch } from "./task-watch.js";

export interface TaskCancellationOptions {
  store: Store;
  runner: Pick<Runner, "cancel">;
  cluster: Pick<Cluster, "requestCancel">;
  watch: Pick<TaskWatch, "ended" | "waitForTask">;
  /** Told whenever a task ends, so that a callback URL it carries is served. */
  callbacks: { wake(): void };
  /** The project of a task claimed ahead here and not started; undefined when none is held here. */
  projectHeld(taskId: string): string | undefined;
  /** Hands such a task back (queued again); false when this node no longer holds it unstarted. */
  releaseUnstarted(taskId: string): Promise<boolean>;
  reportError(doing: string, error: unknown): void;
}

export class TaskCancellation {
  constructor(private readonly options: TaskCancellationOptions) {}

  /** Cancels a task: a pending one at once, a running one by stopping its sandbox, wherever it runs. */
  async cancel(project: string, id: string): Promise<Task | null> {
    const { store, runner, cluster, watch } = this.options;
    const task = await store.getTask(project, id);
    if (task === null || isFinal(task.state)) return task;
    // Claimed ahead here but not started: queued again, then cancelled like any pending task.
    const released = task.state === "running" && (await this.options.releaseUnstarted(id));
    if (task.state === "running" && !released) {
      let stopping = runner.cancel(id);
      if (!stopping) {
        // Another node runs it: watched first, so that its end is announced to this node.
        await store.watchTask(project, id);
        stopping = await cluster.requestCancel(id);
      }
      if (stopping) {
        await watch.waitForTask(project, id, 10_000);
        return store.getTask(project, id);
      }
    }
    return this.cancelPending(project, id);
  }

  /**
   * Another node cancels a task this node holds: a running one by stopping its sandbox, one claimed
   * ahead and not started by taking it out of its local queue and cancelling it (the requesting node
   * watches the task, so the end is announced to it).
   */
  cancelRequested(taskId: string): void {
    if (!this.options.runner.cancel(taskId)) void this.cancelUnstarted(taskId);
  }

  private async cancelUnstarted(id: string): Promise<void> {
    const project = this.options.projectHeld(id);
    try {
      if (project !== undefined && (await this.options.releaseUnstarted(id))) {
        await this.cancelPending(project, id);
      }
    } catch (error) {
      this.options.reportError("cancelling a task claimed ahead", error);
    }
  }

  private async cancelPending(project: string, id: string): Promise<Task | null> {
    const cancelled = await this.options.store.cancelPendingTask(project, id, new Date());
    if (cancelled !== null && isFinal(cancelled.state)) {
      this.options.watch.ended(id);
      this.options.callbacks.wake();
    }
    return cancelled;
  }
}
