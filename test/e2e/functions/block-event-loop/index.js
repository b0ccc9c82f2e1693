/**
 * On its first attempt, writes its process id to `$PID_DIR/<task id>.pid` and then blocks its sandbox's
 * event loop for `payload.blockMs`: the sandbox can then react to nothing, not even its server going
 * away, and only a kill ends it. Later attempts return at once.
 */
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";

/**
 * @param {{ blockMs: number }} payload
 * @param {{ taskId: string, attempt: number }} ctx
 */
export default function blockEventLoop(payload, ctx) {
  if (ctx.attempt > 1) return { attempt: ctx.attempt };
  const dir = process.env.PID_DIR;
  if (dir === undefined) throw new Error("PID_DIR is not set");
  const file = path.join(dir, `${ctx.taskId}.pid`);
  // Written aside then renamed, so a reader never sees half a pid.
  writeFileSync(`${file}.tmp`, String(process.pid));
  renameSync(`${file}.tmp`, file);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, payload.blockMs);
  return { attempt: ctx.attempt };
}
