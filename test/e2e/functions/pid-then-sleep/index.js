/**
 * Reports its sandbox's identity as its first progress message, `{ pid, uid }` as seen from inside (a
 * sandbox cannot write to the host, so the test reads it from the task), then sleeps `payload.sleepMs`,
 * ignoring `ctx.signal`: only the kill of its sandbox ends it early.
 */
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ sleepMs: number }} payload
 * @param {{ progress: (percent: number, message?: string) => void }} ctx
 */
export default async function pidThenSleep(payload, ctx) {
  ctx.progress(1, JSON.stringify({ pid: process.pid, uid: process.getuid?.() }));
  await sleep(payload.sleepMs);
  return { slept: payload.sleepMs };
}
