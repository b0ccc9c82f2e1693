/**
 * Function archives: the tar.gz a deploy uploads, unpacked as hostile input. The archive is inflated as
 * a stream (zlib on the thread pool, with backpressure) and refused as soon as it crosses a cap; files and
 * directories are written as they arrive, symlinks only at the end, once all of them are known to stay
 * inside the function directory — so nothing is ever written, or read, through a link.
 */
import { constants } from "node:fs";
import { mkdir, open, symlink } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { createHash } from "node:crypto";
import * as tar from "tar";
import { KilnError } from "../domain/errors.js";
import { FunctionTree, invalidArchive, parseEntryPath } from "./function-tree.js";

/** How much an archive may hold once inflated; both are settings of the node (`Config`). */
export interface ArchiveLimits {
  /** The inflated tar stream (file contents and headers), in MiB. */
  maxUnpackedMb: number;
  /** Files, directories and symlinks together. */
  maxArchiveEntries: number;
}

/**
 * 256 MiB is about what Lambda allows a function unzipped (250 MB), far more than a function needs
 * without its data, and what one deploy may put on a node's disk; 10,000 entries hold a large
 * `node_modules` while keeping the files, and the memory for their paths, of one deploy bounded.
 */
export const defaultArchiveLimits: ArchiveLimits = { maxUnpackedMb: 256, maxArchiveEntries: 10_000 };

const fileTypes = new Set(["File", "OldFile", "ContiguousFile"]);
const createFileFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Failures of the file system that an entry's name or place causes, not the node. */
const entryErrnoCodes = new Set(["ENAMETOOLONG", "EEXIST", "ENOTDIR", "EISDIR", "ELOOP"]);

/** A function unpacked into `dir`: its tree (what the archive held) and its content address. */
export class UnpackedFunction {
  constructor(
    readonly dir: string,
    readonly tree: FunctionTree,
    readonly digest: string,
  ) {}

  /** Reads a file `tree.findFile` returned: its path holds no symlink, and none is followed at the end. */
  async readFile(file: { path: string }): Promise<Buffer> {
    const handle = await open(path.join(this.dir, file.path), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }
}

/**
 * Unpacks an archive into `dir` (which must exist and be empty). Throws `INVALID_ARCHIVE` when it is
 * not a readable tar.gz or is unsafe, `ARCHIVE_TOO_LARGE` when it crosses a limit; `dir` may then hold
 * part of it, which the caller removes.
 */
export async function unpackFunctionArchive(
  archive: Uint8Array,
  dir: string,
  limits: ArchiveLimits = defaultArchiveLimits,
): Promise<UnpackedFunction> {
  const maxBytes = limits.maxUnpackedMb * 1024 * 1024;
  const tree = new FunctionTree();
  let entryCount = 0;
  let fileBytes = 0;
  // Set from the entry callbacks, so held in an object the compiler does not narrow to its first value.
  const progress: { failure: Error | null; reading: tar.ReadEntry | null } = { failure: null, reading: null };
  let writing = Promise.resolve();

  async function writeEntry(entry: tar.ReadEntry): Promise<void> {
    entryCount += 1;
    if (entryCount > limits.maxArchiveEntries) {
      throw tooLarge(`holds more than ${limits.maxArchiveEntries} entries`, "KILN_MAX_ARCHIVE_ENTRIES");
    }
    const parts = parseEntryPath(entry.path);
    if (entry.type === "Directory") {
      tree.addDirectory(parts, entry.path);
      await mkdir(path.join(dir, ...parts), { recursive: true, mode: 0o755 });
    } else if (entry.type === "SymbolicLink") {
      tree.addSymlink(parts, entry.path, entry.linkpath ?? "");
    } else if (fileTypes.has(entry.type)) {
      // The header states the size before any of it is inflated: a bomb is refused right here.
      fileBytes += entry.size;
      if (fileBytes > maxBytes) throw unpacksTooLarge(limits);
      const executable = ((entry.mode ?? 0o644) & 0o111) !== 0;
      const node = tree.addFile(parts, entry.path, executable, entry.size);
      await mkdir(path.join(dir, ...parts.slice(0, -1)), { recursive: true, mode: 0o755 });
      node.sha256 = await writeFile(entry, path.join(dir, ...parts), executable ? 0o755 : 0o644);
    } else {
      throw invalidArchive(
        `'${entry.path}' is a ${entry.type}; only files, directories and symlinks are allowed`,
      );
    }
    entry.resume();
  }

  const parser = new tar.Parser({
    strict: true,
    // The parser would inflate gzip, zstd or brotli found inside by itself, synchronously and uncounted.
    zstd: false,
    brotli: false,
    maxMetaEntrySize: 64 * 1024,
    onReadEntry: (entry) => {
      writing = writing.then(async () => {
        if (progress.failure !== null) return void entry.resume();
        progress.reading = entry;
        try {
          await writeEntry(entry);
        } catch (error) {
          progress.failure ??= describeEntryFailure(error, entry.path);
          parser.abort(progress.failure);
        } finally {
          progress.reading = null;
        }
      });
    },
  });

  const guard = new InflatedSizeGuard(limits);
  parser.on("eof", () => guard.dropTheRest());
  let streamFailure: unknown = null;
  try {
    await pipeline(Readable.from([archive]), createGunzip({ chunkSize: 64 * 1024 }), guard, parser);
  } catch (error) {
    streamFailure = error;
    // An entry still waiting for data that will never come would hold up `writing` forever.
    progress.reading?.destroy();
  }
  await writing;
  if (progress.failure !== null) throw progress.failure;
  if (streamFailure !== null) {
    if (streamFailure instanceof KilnError) throw streamFailure;
    throw new KilnError("INVALID_ARCHIVE", "the function archive is not a readable tar.gz", {
      cause: streamFailure,
    });
  }
  if (tree.fileCount === 0) throw new KilnError("INVALID_ARCHIVE", "the function archive holds no files");
  tree.checkSymlinks();
  for (const [relative, target] of tree.symlinks()) await symlink(target, path.join(dir, relative));
  return new UnpackedFunction(dir, tree, tree.digest());
}

/** Writes an entry's content to a new file (never through a link), returning its sha256. */
async function writeFile(entry: tar.ReadEntry, file: string, mode: number): Promise<string> {
  const hash = createHash("sha256");
  const handle = await open(file, createFileFlags, mode);
  try {
    await handle.chmod(mode); // the umask must not take read access from sandboxes
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      hash.update(chunk);
      for (let offset = 0; offset < chunk.length;) {
        offset += (await handle.write(chunk, offset)).bytesWritten;
      }
    }
  } finally {
    await handle.close();
  }
  return hash.digest("hex");
}

/**
 * Counts the inflated bytes and stops the stream the moment they cross the cap. Bytes after the tar's
 * end are counted but not passed on: the parser would keep them all, copying them into one buffer.
 */
class InflatedSizeGuard extends Transform {
  private seenBytes = 0;
  private archiveEnded = false;

  constructor(private readonly limits: ArchiveLimits) {
    super();
  }

  /** Called when the parser has read the end-of-archive marker. */
  dropTheRest(): void {
    this.archiveEnded = true;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.seenBytes === 0 && chunk[0] === 0x1f && chunk[1] === 0x8b) {
      callback(new KilnError("INVALID_ARCHIVE", "the function archive is compressed twice; send a tar.gz"));
      return;
    }
    this.seenBytes += chunk.length;
    if (this.seenBytes > this.limits.maxUnpackedMb * 1024 * 1024) callback(unpacksTooLarge(this.limits));
    else callback(null, this.archiveEnded ? undefined : chunk);
  }
}

function describeEntryFailure(error: unknown, entryPath: string): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const code = (error as NodeJS.ErrnoException).code;
  if (error instanceof KilnError || code === undefined || !entryErrnoCodes.has(code)) return error;
  return invalidArchive(`'${entryPath}' cannot be unpacked (${code})`);
}

function unpacksTooLarge(limits: ArchiveLimits): KilnError {
  return tooLarge(`unpacks to more than ${limits.maxUnpackedMb} MiB`, "KILN_MAX_UNPACKED_MB");
}

function tooLarge(what: string, setting: string): KilnError {
  return new KilnError(
    "ARCHIVE_TOO_LARGE",
    `the function archive ${what}, the most this node accepts (${setting})`,
  );
}
