/** Waits for many tasks at once: a few long polls in flight, never a busy loop. */
import type { KilnClient, Task } from "../client/index.js";

/**
 * Waits until every task is final or `timeoutS` (default: no limit) passes, with at most
 * `concurrency` (default 16) wait requests in flight. Resolves with the tasks in the order of `ids`,
 * each as it was when its wait ended.
 */
export async function waitForTasks(
  client: KilnClient,
  ids: readonly string[],
  options: {
    concurrency?: number;
    timeoutS?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<Task[]> {
  const deadlineMs = Date.now() + (options.timeoutS ?? Infinity) * 1000;
  const tasks: Task[] = new Array<Task>(ids.length);
  let next = 0;
  let done = 0;
  let failed = false;

  async function waitForNext(): Promise<void> {
    while (!failed && next < ids.length) {
      const index = next++;
      const id = ids[index] as string;
      try {
        tasks[index] = await client.waitForTask(id, {
          timeoutS: Math.max(0, (deadlineMs - Date.now()) / 1000),
        });
      } catch (error) {
        failed = true;
        throw error;
      }
      done += 1;
      options.onProgress?.(done, ids.length);
    }
  }

  const workers = Math.max(1, Math.min(options.concurrency ?? 16, ids.length));
  await Promise.all(Array.from({ length: workers }, () => waitForNext()));
  return tasks;
}
