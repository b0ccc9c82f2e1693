/** The revision cache unpacks archives from the store, which nodes share: as carefully as a deploy. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createTarGz } from "../../test/e2e/tar-gz.js";
import type { Store } from "../store/store.js";
import { RevisionCache } from "./revision-cache.js";

/** A store that holds one archive under every digest: all the cache asks of it. */
function createStoreHolding(archive: Uint8Array): Store {
  return { getRevisionArchive: () => Promise.resolve(archive) } as unknown as Store;
}

test("an unsafe archive in the store is refused with INVALID_ARCHIVE and leaves no code directory", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-revisions-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const archive = createTarGz([
    { path: "index.js", content: "export default () => 1;\n" },
    { path: "a", linkpath: "." },
    { path: "b", linkpath: "a/.." },
  ]);
  const cache = new RevisionCache(dir, createStoreHolding(archive));
  await assert.rejects(cache.codeDir("f".repeat(64)), { code: "INVALID_ARCHIVE" });
  assert.deepEqual(await readdir(dir), []);
});

test("an archive over the node's limits is refused with ARCHIVE_TOO_LARGE", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-revisions-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const archive = createTarGz([
    { path: "a.js", content: "1" },
    { path: "b.js", content: "2" },
  ]);
  const cache = new RevisionCache(dir, createStoreHolding(archive), {
    maxUnpackedMb: 1,
    maxArchiveEntries: 1,
  });
  await assert.rejects(cache.codeDir("e".repeat(64)), { code: "ARCHIVE_TOO_LARGE" });
});

test("a safe archive is unpacked readable by all, under its digest", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-revisions-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cache = new RevisionCache(
    dir,
    createStoreHolding(createTarGz([{ path: "index.js", content: "ok" }])),
  );
  const codeDir = await cache.codeDir("d".repeat(64));
  assert.equal(codeDir, path.join(dir, "d".repeat(64)));
  assert.equal(await readFile(path.join(codeDir, "index.js"), "utf8"), "ok");
  assert.equal((await stat(path.join(codeDir, "index.js"))).mode & 0o777, 0o644);
  assert.equal((await stat(codeDir)).mode & 0o777, 0o755);
});
