/**
 * On its first attempt, reports its sandbox's identity as its first progress message, `{ pid, uid }` as
 * seen from inside, and then blocks its sandbox's event loop for `payload.blockMs`: the sandbox can then
 * react to nothing, not even its server going away, and only a kill ends it. Later attempts return at once.
 */
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * @param {{ blockMs: number }} payload
 * @param {{ attempt: number, progress: (percent: number, message?: string) => void }} ctx
 */
export default async function blockEventLoop(payload, ctx) {
  if (ctx.attempt > 1) return { attempt: ctx.attempt };
  ctx.progress(1, JSON.stringify({ pid: process.pid, uid: process.getuid?.() }));
  // The progress message leaves over IPC (`process.send`, asynchronous): let it go before blocking.
  await sleep(50);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, payload.blockMs);
  return { attempt: ctx.attempt };
}
