import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { list } from "tar";
import { KilnApiError } from "./kiln-api-error.js";
import { packFunction } from "./pack-function.js";

async function createFunctionDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-pack-"));
  await writeFile(path.join(dir, "kiln.json"), '{ "runtime": "node" }\n');
  await writeFile(path.join(dir, "index.js"), "export default async () => 42;\n");
  await mkdir(path.join(dir, "lib"));
  await writeFile(path.join(dir, "lib", "helper.js"), "export const x = 1;\n");
  await mkdir(path.join(dir, ".git"));
  await writeFile(path.join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
  await mkdir(path.join(dir, "node_modules", ".cache"), { recursive: true });
  await writeFile(path.join(dir, "node_modules", ".cache", "junk"), "cache\n");
  await mkdir(path.join(dir, "node_modules", "dep"));
  await writeFile(path.join(dir, "node_modules", "dep", "index.js"), "module.exports = 1;\n");
  return dir;
}

async function listArchive(archive: Uint8Array): Promise<string[]> {
  const paths: string[] = [];
  const parser = list({ onReadEntry: (entry) => paths.push(entry.path) });
  await new Promise<void>((resolve, reject) => {
    parser.on("end", resolve);
    parser.on("error", reject);
    parser.end(Buffer.from(archive));
  });
  return paths;
}

test("packing the same directory twice gives identical bytes, even after its files are touched", async (t) => {
  const dir = await createFunctionDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await packFunction(dir);
  await utimes(path.join(dir, "index.js"), new Date(), new Date("2024-06-01T00:00:00Z"));
  const second = await packFunction(dir);
  assert.ok(first.length > 0);
  assert.deepEqual(Buffer.from(second), Buffer.from(first));
});

test("the archive lists the function's files in name order and leaves out .git and node_modules/.cache", async (t) => {
  const dir = await createFunctionDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const paths = await listArchive(await packFunction(dir));
  assert.deepEqual(paths, ["index.js", "kiln.json", "lib/helper.js", "node_modules/dep/index.js"]);
});

test("packing a directory with no files says so with INVALID_FUNCTION_DIR", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-pack-empty-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, ".git"));
  await writeFile(path.join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
  await assert.rejects(packFunction(dir), (error: unknown) => {
    assert.ok(error instanceof KilnApiError, String(error));
    assert.equal(error.code, "INVALID_FUNCTION_DIR");
    assert.equal(error.message, `${dir} has no files to deploy (.git and node_modules/.cache are left out)`);
    return true;
  });
});
