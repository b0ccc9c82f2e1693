/**
 * The kernel's limit on what one `exec` may carry (arguments and environment together), checked before
 * a sandbox starts: past it, bwrap's exec of the sandbox fails with E2BIG, which would only say "exit 1".
 */
import { readFileSync } from "node:fs";

/** `MAX_ARG_STRLEN`: one argument or one `NAME=value` (32 pages of 4 KiB). */
const maxStringBytes = 32 * 4096;
/** `_STK_LIM / 4 * 3`: the cap whatever the stack limit. */
const maxTotalBytes = 6 * 1024 * 1024;
/** `ARG_MAX`: the floor whatever the stack limit. */
const minTotalBytes = 128 * 1024;
/** The wrapper arguments (setpriv's) and the program's path, which also count. */
const reserveBytes = 4096;

let totalLimitBytes: number | undefined;

/** A quarter of the stack limit, between `ARG_MAX` and 6 MiB, as fs/exec.c computes it. */
function readTotalLimitBytes(): number {
  if (totalLimitBytes !== undefined) return totalLimitBytes;
  const limits = readFileSync("/proc/self/limits", "utf8");
  const soft = /^Max stack size\s+(\S+)/m.exec(limits)?.[1];
  const stackBytes = soft === undefined || soft === "unlimited" ? Infinity : Number(soft);
  totalLimitBytes = Math.max(minTotalBytes, Math.min(maxTotalBytes, stackBytes / 4));
  return totalLimitBytes;
}

/** Throws, in the words of a function's owner, when `env` and `argv` cannot be passed to one exec. */
export function assertFitsExec(env: Record<string, string>, argv: string[]): void {
  const strings = [...argv, ...Object.entries(env).map(([name, value]) => `${name}=${value}`)];
  let totalBytes = reserveBytes;
  for (const text of strings) {
    const bytes = Buffer.byteLength(text) + 1;
    if (bytes > maxStringBytes) {
      const name = text.slice(0, Math.min(text.indexOf("="), 64));
      throw new Error(
        `env ${name} is ${bytes} bytes with its name; one variable may hold at most ${maxStringBytes} bytes`,
      );
    }
    totalBytes += bytes + 8; // and its pointer
  }
  const limit = readTotalLimitBytes();
  if (totalBytes > limit) {
    throw new Error(
      `the function's env is too large to start a process with: env and arguments take ${totalBytes} ` +
        `bytes, and this host's kernel allows at most ${limit} bytes for one exec; make env smaller`,
    );
  }
}
