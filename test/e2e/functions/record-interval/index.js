/**
 * Sleeps `payload.sleepMs` and records when it ran, as `{ startMs, endMs }` (epoch milliseconds, sub-ms
 * precision) in `$INTERVAL_DIR/<task id>.json`.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number }} payload
 * @param {{ taskId: string }} ctx
 */
export default async function recordInterval(payload, ctx) {
  const startMs = performance.timeOrigin + performance.now();
  const dir = process.env.INTERVAL_DIR;
  if (dir === undefined) throw new Error("INTERVAL_DIR is not set");
  await sleep(payload.sleepMs);
  const endMs = performance.timeOrigin + performance.now();
  await writeFile(path.join(dir, `${ctx.taskId}.json`), JSON.stringify({ startMs, endMs }));
  return { startMs, endMs };
}
