/**
 * Packs a function directory as a deterministic tar.gz: the same files give the same bytes, whatever
 * their timestamps, owners or the order the file system lists them in.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { create } from "tar";
import { KilnApiError } from "./kiln-api-error.js";

/** Every entry gets this mtime, so that touching a file does not change the archive. */
const packedMtime = new Date("1980-01-01T00:00:00Z");

/**
 * The paths (relative, `/`-separated) of the files and symlinks under `dir`, sorted by name within each
 * directory, leaving out `.git` directories and `node_modules/.cache`.
 */
export async function listFunctionFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  async function visit(relativeDir: string): Promise<void> {
    const entries = await readdir(path.join(dir, relativeDir), { withFileTypes: true });
    // Code-unit order, not localeCompare: the result must not depend on the machine's locale.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const relativePath = relativeDir === "" ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!isSkippedDirectory(relativeDir, entry.name)) await visit(relativePath);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        files.push(relativePath);
      }
    }
  }
  await visit("");
  return files;
}

/**
 * Packs the files `listFunctionFiles` finds under `dir` into a gzipped tar archive. Throws
 * `KilnApiError` `INVALID_FUNCTION_DIR` (status 0) when there are none: nothing to deploy.
 */
export async function packFunction(dir: string): Promise<Uint8Array> {
  const files = await listFunctionFiles(dir);
  if (files.length === 0) {
    throw new KilnApiError(
      "INVALID_FUNCTION_DIR",
      `${dir} has no files to deploy (.git and node_modules/.cache are left out)`,
    );
  }
  const pack = create(
    { cwd: dir, gzip: true, portable: true, mtime: packedMtime, noDirRecurse: true, follow: false },
    // tar reads a name starting with "@" as another archive to append; "./" makes it a plain file.
    files.map((file) => (file.startsWith("@") ? `./${file}` : file)),
  );
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function isSkippedDirectory(parentDir: string, name: string): boolean {
  if (name === ".git") return true;
  return name === ".cache" && path.posix.basename(parentDir) === "node_modules";
}
