/**
 * The machine is shared: before each measurement, wait (bounded) until it is mostly idle, as
 * `../shared/bench-peers/` does, and say how idle it was.
 */
import { readFileSync } from "node:fs";
import { sleep } from "./task-measures.js";

function readCpuTicks(): { idle: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const ticks = fields.slice(0, 8);
  return { idle: (ticks[3] ?? 0) + (ticks[4] ?? 0), total: ticks.reduce((sum, value) => sum + value, 0) };
}

async function measureIdlePct(ms: number): Promise<number> {
  const before = readCpuTicks();
  await sleep(ms);
  const after = readCpuTicks();
  return (100 * (after.idle - before.idle)) / Math.max(1, after.total - before.total);
}

/**
 * Waits until the CPUs were at least `BENCH_QUIET_MIN_IDLE` % (85) idle over 2 s, for at most
 * `BENCH_QUIET_MAX_S` s (300; 0 skips the wait); returns a note for the log, such as `idle 97 %`.
 */
export async function waitForQuietMachine(): Promise<string> {
  const minIdlePct = Number(process.env.BENCH_QUIET_MIN_IDLE ?? 85);
  const maxWaitMs = Number(process.env.BENCH_QUIET_MAX_S ?? 300) * 1000;
  if (maxWaitMs === 0 || !process.platform.startsWith("linux")) return "no quiet wait";
  const startedMs = performance.now();
  let idlePct = await measureIdlePct(2000);
  while (idlePct < minIdlePct && performance.now() - startedMs < maxWaitMs) {
    await sleep(3000);
    idlePct = await measureIdlePct(2000);
  }
  const waitedS = (performance.now() - startedMs) / 1000;
  const gaveUp = idlePct < minIdlePct ? ", gave up waiting" : "";
  return `idle ${idlePct.toFixed(0)} % after ${waitedS.toFixed(0)} s${gaveUp}`;
}
