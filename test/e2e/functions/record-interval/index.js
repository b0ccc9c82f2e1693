/**
 * Sleeps `payload.sleepMs` and returns when it ran, `{ startMs, endMs }` (epoch milliseconds, sub-ms
 * precision), as its result.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number }} payload
 */
export default async function recordInterval(payload) {
  const startMs = performance.timeOrigin + performance.now();
  await sleep(payload.sleepMs);
  const endMs = performance.timeOrigin + performance.now();
  return { startMs, endMs };
}
