/** Emptying a sandbox's folders from the node, between tasks. */
import { readdirSync, statfsSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";

/**
 * The names in `dir` (none when it does not exist). Synchronous, as `readUsedBytes`: on an (almost
 * always) empty tmpfs it takes µs, a thread-pool round trip ~0.5 ms on a busy node.
 */
export function listFolder(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Removes `names` from `dir`. `rm` lstat's each path before it recurses, so a link is removed, never
 * followed; whoever could swap a folder for a link meanwhile must be stopped first (see the callers).
 */
export async function removeFromFolder(dir: string, names: string[]): Promise<void> {
  await Promise.all(names.map((name) => rm(path.join(dir, name), { recursive: true, force: true })));
}

/**
 * Bytes still used on the file system of `dir` (a tmpfs of its own): the space of a file deleted but
 * held open by a process does not come back.
 */
export function readUsedBytes(dir: string): number {
  const { blocks, bfree, bsize } = statfsSync(dir);
  return (blocks - bfree) * bsize;
}
