/**
 * The few file operations the cgroup drivers make, all asynchronous: a synchronous write to a cgroup
 * file can block for an RCU grace period (~12 ms measured for a `cgroup.procs` move), which the server's
 * event loop must never wait for. Tests substitute a fake kernel over a temp dir (`FakeCgroupKernel`).
 */
import { constants } from "node:fs";
import { access, mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { pollUntil } from "./poll-until.js";

export interface CgroupFs {
  /** Creates one cgroup directory; the kernel fills it with interface files. Fails if it exists. */
  makeDir(path: string): Promise<void>;
  /** Removes an empty cgroup directory (EBUSY while processes or child cgroups remain). */
  removeDir(path: string): Promise<void>;
  readText(path: string): Promise<string>;
  /** Writes `value` in one write() to an existing interface file; never creates a file. */
  writeText(path: string, value: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

/** The real cgroup filesystems. */
export const kernelCgroupFs: CgroupFs = {
  makeDir: async (path) => {
    await mkdir(path);
  },
  removeDir: (path) => rmdir(path),
  readText: (path) => readFile(path, "utf8"),
  // O_WRONLY without O_CREAT: a missing interface file (controller not enabled, old kernel) is an ENOENT,
  // not a new regular file. O_RDWR would fail on write-only files such as cgroup.kill.
  writeText: (path, value) => writeFile(path, value, { flag: constants.O_WRONLY | constants.O_TRUNC }),
  exists: async (path) => {
    try {
      await access(path);
      return true;
    } catch {
      return false;
    }
  },
};

/**
 * Reads `key`'s value from a flat-keyed file (`memory.events`, `cgroup.events`, v1 `memory.oom_control`):
 * lines of `key value`. Returns undefined when the key is absent.
 */
export async function readKeyedNumber(fs: CgroupFs, path: string, key: string): Promise<number | undefined> {
  const text = await fs.readText(path);
  for (const line of text.split("\n")) {
    const [lineKey, value] = line.trim().split(/\s+/);
    if (lineKey === key && value !== undefined) return Number(value);
  }
  return undefined;
}

/** The pids listed in a `cgroup.procs` file (a missing cgroup lists none). */
export async function readProcs(fs: CgroupFs, procsPath: string): Promise<number[]> {
  let text: string;
  try {
    text = await fs.readText(procsPath);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return [];
    throw error;
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map(Number);
}

/** The `code` of a Node system error (`ENOENT`, `EBUSY`, …), if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

/**
 * Removes a cgroup directory, retrying while it is EBUSY: processes just killed can stay attached for a
 * few ms. A directory already gone counts as removed. Bounded by `deadline` (`performance.now()` ms).
 */
export async function removeCgroupDir(fs: CgroupFs, dir: string, deadline: number): Promise<void> {
  let lastError: unknown;
  const removed = await pollUntil(
    async () => {
      try {
        await fs.removeDir(dir);
        return true;
      } catch (error) {
        if (errorCode(error) === "ENOENT") return true;
        if (errorCode(error) !== "EBUSY") throw error;
        lastError = error;
        return false;
      }
    },
    deadline,
    5,
  );
  if (!removed) throw new Error(`cgroup ${dir} is still busy`, { cause: lastError });
}
