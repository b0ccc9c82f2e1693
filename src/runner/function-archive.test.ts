/**
 * Unpacking hostile archives: what the node writes, what it refuses and how early. Small limits keep the
 * bombs small; the API tests (`src/api/function-routes.test.ts`) try the node's real defaults.
 */
import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { gzipSync } from "node:zlib";
import { createTar, createTarGz, createZeroBombTarGz, type TarEntry } from "../../test/e2e/tar-gz.js";
import { KilnError } from "../domain/errors.js";
import { unpackFunctionArchive, type ArchiveLimits } from "./function-archive.js";

const index: TarEntry = { path: "index.js", content: "export default async () => 1;\n" };
const smallLimits: ArchiveLimits = { maxUnpackedMb: 1, maxArchiveEntries: 20 };

async function createTargetDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-archive-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every path under `dir` that is a symlink, relative. */
async function listSymlinks(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isSymbolicLink())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
}

async function assertRefused(
  archive: Uint8Array,
  dir: string,
  code: string,
  message: RegExp,
  limits?: ArchiveLimits,
): Promise<void> {
  await assert.rejects(unpackFunctionArchive(archive, dir, limits), (error: unknown) => {
    assert.ok(error instanceof KilnError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

test("a chain of symlinks that are each harmless but together climb out is refused, and no link is made", async (t) => {
  const dir = await createTargetDir(t);
  const chain: TarEntry[] = [{ path: "l0", linkpath: "." }];
  for (let level = 1; level <= 12; level++) {
    chain.push({ path: `l${level}`, linkpath: `l${level - 1}/..` });
  }
  const archive = createTarGz([index, ...chain, { path: "kiln.json", linkpath: "l12/etc/shadow" }]);
  await assertRefused(archive, dir, "INVALID_ARCHIVE", /symlink 'l1' -> 'l0\/\.\.' points outside/);
  assert.deepEqual(await listSymlinks(dir), []);
});

test("a symlink chain that only resolves outside once a later entry exists is refused too", async (t) => {
  const dir = await createTargetDir(t);
  // `up` is harmless while `a` does not exist; `a -> .` comes later in the archive and makes it escape.
  const archive = createTarGz([index, { path: "up", linkpath: "a/.." }, { path: "a", linkpath: "." }]);
  await assertRefused(archive, dir, "INVALID_ARCHIVE", /symlink 'up' -> 'a\/\.\.' points outside/);
});

test("an entry written through a symlink is refused, even one pointing inside the function", async (t) => {
  const dir = await createTargetDir(t);
  const archive = createTarGz([
    index,
    { path: "lib", linkpath: "." },
    { path: "lib/evil.js", content: "pwned" },
  ]);
  await assertRefused(
    archive,
    dir,
    "INVALID_ARCHIVE",
    /'lib\/evil\.js' would be written through the symlink 'lib'/,
  );
  assert.deepEqual(await readdir(dir), ["index.js"]);
});

test("a symlink loop is refused", async (t) => {
  const dir = await createTargetDir(t);
  const archive = createTarGz([index, { path: "a", linkpath: "b" }, { path: "b", linkpath: "a" }]);
  await assertRefused(archive, dir, "INVALID_ARCHIVE", /loop of symlinks/);
});

test("a file announced larger than the limit is refused at its header, before it is inflated", async (t) => {
  const dir = await createTargetDir(t);
  const archive = await createZeroBombTarGz("zeros.bin", 256 * 1024 * 1024);
  assert.ok(archive.length < 1024 * 1024, `the bomb is ${archive.length} bytes`);
  const started = performance.now();
  await assertRefused(archive, dir, "ARCHIVE_TOO_LARGE", /unpacks to more than 1 MiB/, smallLimits);
  assert.ok(performance.now() - started < 200, "the whole bomb was inflated before the refusal");
  assert.deepEqual(await readdir(dir), []);
});

test("zeros no header announces (after the end of the archive) are counted and refused too", async (t) => {
  const dir = await createTargetDir(t);
  const archive = await createZeroBombTarGz("small.bin", 1000, 64 * 1024 * 1024);
  await assertRefused(archive, dir, "ARCHIVE_TOO_LARGE", /unpacks to more than 1 MiB/, smallLimits);
});

test("an archive with more entries than the limit is refused", async (t) => {
  const dir = await createTargetDir(t);
  const links = Array.from({ length: 20 }, (_, i): TarEntry => ({ path: `l${i}`, linkpath: "index.js" }));
  const archive = createTarGz([index, ...links]);
  await assertRefused(archive, dir, "ARCHIVE_TOO_LARGE", /more than 20 entries/, smallLimits);
});

test("a tar.gz inside the gzip is refused: the parser would inflate it uncounted", async (t) => {
  const dir = await createTargetDir(t);
  await assertRefused(gzipSync(createTarGz([index])), dir, "INVALID_ARCHIVE", /compressed twice/);
});

test("an archive with no files, or a file twice, is refused", async (t) => {
  // What `tar czf f.tgz -C empty-dir .` packs.
  const onlyDirectory = createTarGz([
    { path: "./", directory: true },
    { path: "./lib/", directory: true },
  ]);
  await assertRefused(onlyDirectory, await createTargetDir(t), "INVALID_ARCHIVE", /holds no files/);
  const twice = createTarGz([index, { path: "./index.js", content: "again" }]);
  await assertRefused(twice, await createTargetDir(t), "INVALID_ARCHIVE", /'\.\/index\.js' appears twice/);
});

test("a truncated archive is refused as unreadable, without hanging on the half-read file", async (t) => {
  const tar = createTar([{ path: "big.js", content: "x".repeat(100_000) }]);
  const archive = gzipSync(tar.subarray(0, 50_000));
  await assertRefused(archive, await createTargetDir(t), "INVALID_ARCHIVE", /not a readable tar\.gz/);
});

test("files, directories and symlinks that stay inside unpack, and lookups follow links inside only", async (t) => {
  const dir = await createTargetDir(t);
  const archive = createTarGz([
    { path: "./", directory: true },
    { path: "main.js", linkpath: "lib/real.js" },
    { path: "lib/", directory: true },
    { path: "lib/real.js", content: "real" },
    { path: "lib/up", linkpath: "../lib/./real.js" },
    { path: "empty/", directory: true },
  ]);
  const unpacked = await unpackFunctionArchive(archive, dir);
  assert.equal(await readFile(path.join(dir, "lib", "real.js"), "utf8"), "real");
  assert.equal(await readlink(path.join(dir, "main.js")), "lib/real.js");
  assert.ok((await lstat(path.join(dir, "empty"))).isDirectory());
  assert.deepEqual(unpacked.tree.findFile("main.js"), { path: "lib/real.js", sizeBytes: 4 });
  assert.deepEqual(unpacked.tree.findFile("lib/up"), { path: "lib/real.js", sizeBytes: 4 });
  assert.equal(unpacked.tree.findFile("../etc/passwd"), null);
  assert.equal(unpacked.tree.findFile("lib"), null);
  assert.match(unpacked.digest, /^[0-9a-f]{64}$/);
});

test("the digest is the same however the archive was packed, and changes with a file's content", async (t) => {
  const first = await unpackFunctionArchive(
    createTarGz([{ path: "b.js", content: "b" }, index, { path: "lib/", directory: true }]),
    await createTargetDir(t),
  );
  const reordered = await unpackFunctionArchive(
    createTarGz([index, { path: "./b.js", content: "b" }]),
    await createTargetDir(t),
  );
  const changed = await unpackFunctionArchive(
    createTarGz([index, { path: "b.js", content: "c" }]),
    await createTargetDir(t),
  );
  assert.equal(reordered.digest, first.digest);
  assert.notEqual(changed.digest, first.digest);
});
