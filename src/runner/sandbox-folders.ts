/** Emptying a sandbox's folders from the node, between tasks. */
import { readdir, rm, statfs } from "node:fs/promises";
import path from "node:path";

/** The names in `dir` (none when it does not exist). */
export async function listFolder(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
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
export async function readUsedBytes(dir: string): Promise<number> {
  const { blocks, bfree, bsize } = await statfs(dir);
  return (blocks - bfree) * bsize;
}
