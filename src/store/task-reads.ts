/** The `TaskReads` port: a task as the API shows it, task lists, logs, and what waiting on a task needs. */
import type { Task, TaskState } from "../domain/task.js";

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

export interface TaskReads {
  getTask(project: string, id: string): Promise<Task | null>;
  /**
   * Reads the task like `getTask` and marks it awaited: from then on, every node hears when it starts
   * and when it ends, so a caller waiting on one node learns the outcome of a run on another.
   */
  watchTask(project: string, id: string): Promise<Task | null>;
  listTasks(query: TaskQuery): Promise<TaskPage>;
  /** The task's stdout/stderr over all its attempts; null for an unknown task. */
  getTaskLog(project: string, id: string): Promise<string | null>;
}
