/**
 * Function archives: the tar.gz a deploy uploads. Unpacking checks every entry first, so an archive
 * whose paths or links escape its directory is refused whole instead of being quietly "fixed".
 */
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar";
import { KilnError } from "../domain/errors.js";

const allowedTypes = new Set(["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink"]);

/** Throws `INVALID_ARCHIVE` naming the first unsafe or unreadable entry. */
export async function checkFunctionArchive(archive: Uint8Array): Promise<void> {
  const problems: string[] = [];
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      const problem = describeUnsafeEntry(entry.path, entry.type, entry.linkpath);
      if (problem !== null) problems.push(problem);
      entry.resume();
    },
  });
  try {
    await pipeline(Readable.from([Buffer.from(archive)]), parser);
  } catch (error) {
    throw new KilnError("INVALID_ARCHIVE", "the function archive is not a readable tar.gz", { cause: error });
  }
  if (problems.length > 0) {
    throw new KilnError("INVALID_ARCHIVE", `the function archive is unsafe: ${problems[0]}`, {
      details: { problems: problems.slice(0, 20) },
    });
  }
}

function describeUnsafeEntry(entryPath: string, type: string, linkpath: string | undefined): string | null {
  if (!allowedTypes.has(type))
    return `'${entryPath}' is a ${type}; only files, directories and symlinks are allowed`;
  if (escapes(entryPath)) return `'${entryPath}' points outside the function directory`;
  if (type === "SymbolicLink") {
    const target = path.posix.join(path.posix.dirname(entryPath), linkpath ?? "");
    if (path.posix.isAbsolute(linkpath ?? "") || escapes(target)) {
      return `symlink '${entryPath}' -> '${linkpath}' points outside the function directory`;
    }
  }
  return null;
}

function escapes(entryPath: string): boolean {
  if (entryPath.includes("\0") || path.posix.isAbsolute(entryPath)) return true;
  const normalized = path.posix.normalize(entryPath);
  return normalized === ".." || normalized.startsWith("../");
}

/** Unpacks a checked archive into `dir` (which must exist and be empty). */
export async function unpackFunctionArchive(archive: Uint8Array, dir: string): Promise<void> {
  await checkFunctionArchive(archive);
  await pipeline(Readable.from([Buffer.from(archive)]), tar.x({ cwd: dir, strict: true, noChmod: false }));
}

/**
 * The content address of a function: sha256 over its sorted paths, executable bits, link targets and
 * file contents — the same for the same files however the archive was packed.
 */
export async function digestFunctionFiles(dir: string): Promise<string> {
  const hash = createHash("sha256");
  for (const relative of await listFiles(dir)) {
    const full = path.join(dir, relative);
    const stat = await lstat(full);
    if (stat.isSymbolicLink()) {
      hash.update(`link\0${relative}\0${await readlink(full)}\0`);
    } else {
      const executable = (stat.mode & 0o111) !== 0 ? "x" : "-";
      const content = createHash("sha256")
        .update(await readFile(full))
        .digest("hex");
      hash.update(`file\0${relative}\0${executable}\0${content}\0`);
    }
  }
  return hash.digest("hex");
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const relative = path.posix.join(prefix, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(dir, relative)));
    else files.push(relative);
  }
  return files;
}
