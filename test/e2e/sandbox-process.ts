/** Watching a sandbox process from outside: the pid a test function wrote, and waiting for it to end. */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pollUntil } from "./poll-until.js";

/** Waits for the pid `pid-then-sleep` writes to `<dir>/<task id>.pid` once its task runs. */
export async function waitForPidFile(dir: string, taskId: string, timeoutMs: number): Promise<number> {
  return pollUntil(
    `task ${taskId} to write its pid`,
    async () => {
      const text = await readFile(path.join(dir, `${taskId}.pid`), "utf8").catch(() => "");
      const pid = Number(text);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    },
    { timeoutMs, intervalMs: 20 },
  );
}

/** True while a process with this pid exists (a zombie counts: its parent has not reaped it yet). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Resolves with the milliseconds until `process.kill(pid, 0)` throws ESRCH; rejects after `timeoutMs`. */
export async function waitForProcessGone(pid: number, timeoutMs: number): Promise<number> {
  const startedMs = Date.now();
  await pollUntil(`process ${pid} to be gone`, () => (isProcessAlive(pid) ? undefined : true), {
    timeoutMs,
    intervalMs: 20,
  });
  return Date.now() - startedMs;
}
