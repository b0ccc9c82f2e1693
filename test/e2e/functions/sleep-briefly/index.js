/** Sleeps `payload.sleepMs` (a task that keeps a sandbox busy without using the CPU), then echoes `payload.n`. */
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ n: number, sleepMs: number }} payload
 */
export default async function sleepBriefly(payload) {
  await sleep(payload.sleepMs);
  return { n: payload.n };
}
