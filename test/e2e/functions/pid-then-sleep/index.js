/**
 * Writes its process id to `$PID_DIR/<task id>.pid`, then sleeps `payload.sleepMs`, ignoring
 * `ctx.signal`: only the kill of its sandbox ends it early.
 */
import { rename, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number }} payload
 * @param {{ taskId: string }} ctx
 */
export default async function pidThenSleep(payload, ctx) {
  const dir = process.env.PID_DIR;
  if (dir === undefined) throw new Error("PID_DIR is not set");
  const file = path.join(dir, `${ctx.taskId}.pid`);
  // Written aside then renamed, so a reader never sees half a pid.
  await writeFile(`${file}.tmp`, String(process.pid));
  await rename(`${file}.tmp`, file);
  await sleep(payload.sleepMs);
  return { slept: payload.sleepMs };
}
