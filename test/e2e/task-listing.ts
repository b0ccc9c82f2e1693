/** Reading many tasks back through the paginated list, and waiting until a function's tasks are done. */
import type { KilnClient, Task, TaskQuery, TaskState } from "../../src/client/index.js";
import { pollUntil } from "./poll-until.js";

/** Every task the query matches, following `nextCursor` through pages of 1,000. */
export async function listAllTasks(
  client: KilnClient,
  query: Omit<TaskQuery, "cursor" | "limit">,
): Promise<Task[]> {
  const tasks: Task[] = [];
  let cursor: string | null = null;
  do {
    const page = await client.listTasks({ ...query, limit: 1000, ...(cursor === null ? {} : { cursor }) });
    tasks.push(...page.tasks);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return tasks;
}

/**
 * Resolves once no task of the function is delayed, queued or running. The states are checked in the
 * order tasks move through them, so a task moving on between two checks is still seen.
 */
export async function waitUntilNoneUnfinished(
  client: KilnClient,
  functionName: string,
  timeoutMs: number,
): Promise<void> {
  const unfinished: TaskState[] = ["delayed", "queued", "running"];
  await pollUntil(
    `every task of ${functionName} to finish`,
    async () => {
      for (const state of unfinished) {
        const page = await client.listTasks({ function: functionName, state, limit: 1 });
        if (page.tasks.length > 0) return undefined;
      }
      return true;
    },
    { timeoutMs, intervalMs: 250 },
  );
}
