/** Function code on this node's disk, one read-only directory per revision digest, unpacked on demand. */
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Store } from "../store/store.js";
import { unpackFunctionArchive, type ArchiveLimits } from "./function-archive.js";

export class RevisionCache {
  private readonly unpacking = new Map<string, Promise<string>>();

  constructor(
    private readonly dir: string,
    private readonly store: Store,
    /** The node's archive limits: an archive in the store is unpacked as carefully as a deploy. */
    private readonly limits?: ArchiveLimits,
  ) {}

  /** The directory holding the revision's code, unpacking it from the store the first time. */
  codeDir(digest: string): Promise<string> {
    let dir = this.unpacking.get(digest);
    if (dir === undefined) {
      dir = this.unpack(digest);
      this.unpacking.set(digest, dir);
      dir.catch(() => this.unpacking.delete(digest));
    }
    return dir;
  }

  private async unpack(digest: string): Promise<string> {
    const target = path.join(this.dir, digest);
    if (await exists(target)) return target;
    const archive = await this.store.getRevisionArchive(digest);
    if (archive === null) throw new Error(`revision ${digest} is not in the store`);
    await mkdir(this.dir, { recursive: true });
    // Unpack beside the target, then rename: a half-unpacked revision is never visible.
    const temporary = await mkdtemp(path.join(this.dir, `.${digest.slice(0, 12)}-`));
    try {
      await unpackFunctionArchive(archive, temporary, this.limits);
      // Sandboxes run as other users: they must be able to read (never write) the code.
      await makeReadableByAll(temporary);
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { recursive: true, force: true });
      if (!(await exists(target))) throw error;
    }
    return target;
  }
}

async function makeReadableByAll(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeReadableByAll(full);
    else if (entry.isFile()) await chmod(full, ((await stat(full)).mode & 0o111) === 0 ? 0o644 : 0o755);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
