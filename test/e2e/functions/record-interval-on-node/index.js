/**
 * Sleeps `payload.sleepMs` and returns when it ran, `{ startMs, endMs }` (epoch milliseconds, sub-ms
 * precision), and `nodePid`: the sandbox's parent, which under process isolation is the server running it.
 */
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number, reportStart?: boolean }} payload `reportStart`: report progress first, so a
 *   test can tell a real start from a task only claimed ahead (both are `running` in the store)
 * @param {{ progress: (percent: number) => void }} ctx
 */
export default async function recordIntervalOnNode(payload, ctx) {
  const startMs = performance.timeOrigin + performance.now();
  if (payload.reportStart === true) ctx.progress(1);
  await sleep(payload.sleepMs);
  const endMs = performance.timeOrigin + performance.now();
  return { startMs, endMs, nodePid: process.ppid };
}
