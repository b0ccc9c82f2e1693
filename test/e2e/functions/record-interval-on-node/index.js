/**
 * Sleeps `payload.sleepMs` and returns when it ran, `{ startMs, endMs }` (epoch milliseconds, sub-ms
 * precision), and `nodePid`: the sandbox's parent, which under process isolation is the server running it.
 */
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number }} payload
 */
export default async function recordIntervalOnNode(payload) {
  const startMs = performance.timeOrigin + performance.now();
  await sleep(payload.sleepMs);
  const endMs = performance.timeOrigin + performance.now();
  return { startMs, endMs, nodePid: process.ppid };
}
