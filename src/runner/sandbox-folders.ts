/** Emptying a sandbox's folders from the node, between tasks. */
import { opendirSync, statfsSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";

/**
 * The most entries the node removes from a folder itself between tasks. A folder holding more gets its
 * sandbox replaced instead (a tmpfs goes away with it): a task that leaves 100,000 files behind made the
 * node list and remove them one by one, stalling its event loop 2.5 s and growing it by 300 MB.
 */
export const maxEntriesToEmpty = 64;

/**
 * The names in `dir` (none when it does not exist), or null when it holds more than
 * `maxEntriesToEmpty`: no more than that are read. Synchronous, as `readUsage`: on an (almost
 * always) empty tmpfs it takes µs, a thread-pool round trip ~0.5 ms on a busy node.
 */
export function listFolder(dir: string): string[] | null {
  let handle;
  try {
    handle = opendirSync(dir);
  } catch {
    return [];
  }
  try {
    const names: string[] = [];
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      if (names.length === maxEntriesToEmpty) return null;
      names.push(entry.name);
    }
    return names;
  } finally {
    handle.closeSync();
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
 * What the tmpfs of its own mounted at `dir` holds: the bytes in use (the space of a file deleted but
 * held open by a process does not come back), and whether it holds nothing at all. tmpfs counts one
 * inode for its root and one for each file, folder, link and hard link in it, so one inode in use is an
 * empty folder, known from the `statfs` already made for the bytes (~2 µs) instead of a listing (~30 µs
 * for the two folders of a sandbox). A tmpfs without an inode limit reports no counts: not known empty.
 */
export function readUsage(dir: string): { usedBytes: number; empty: boolean } {
  const { blocks, bfree, bsize, files, ffree } = statfsSync(dir);
  return { usedBytes: (blocks - bfree) * bsize, empty: files > 0 && files - ffree <= 1 };
}
