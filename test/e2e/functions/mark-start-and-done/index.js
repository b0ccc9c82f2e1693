/**
 * For process isolation only (it writes to a host file): appends `start <n> <node pid>` to the file named
 * by its env `MARKER_FILE`, sleeps `payload.sleepMs`, appends `done <n> <node pid>`, and returns
 * `{ n, nodePid }`. The node pid is the sandbox's parent, which under process isolation is the server that
 * runs it. Each line is one small O_APPEND write, so lines from concurrent sandboxes do not interleave.
 */
import { appendFileSync } from "node:fs";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ n: number, sleepMs: number }} payload
 */
export default async function markStartAndDone(payload) {
  const markerFile = process.env.MARKER_FILE;
  if (markerFile === undefined) {
    throw Object.assign(new Error("MARKER_FILE is not in the function's env"), { retryable: false });
  }
  // Read once: a sandbox whose server died is re-parented, and its lines must still name that server.
  const nodePid = process.ppid;
  appendFileSync(markerFile, `start ${payload.n} ${nodePid}\n`);
  await sleep(payload.sleepMs);
  appendFileSync(markerFile, `done ${payload.n} ${nodePid}\n`);
  return { n: payload.n, nodePid };
}
