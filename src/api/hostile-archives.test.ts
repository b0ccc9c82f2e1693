/**
 * Deploys of hostile archives against a real node with its default limits (issue 9, findings 3, 5 and
 * 10): each is refused with a 400 or 413 and a stable code, quickly, without reading host files, without
 * inflating the archive in memory, and without changing functions or revisions.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTarGz, createZeroBombTarGz, type TarEntry } from "../../test/e2e/tar-gz.js";
import type { RunningNode } from "../main.js";
import { startTestNode, testToken, type TestNode } from "./test-node.js";

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

const authorization = `Bearer ${testToken}`;
const index: TarEntry = { path: "index.js", content: "export default async (payload) => payload;\n" };
let testNode: TestNode;
let node: RunningNode;

before(async () => {
  testNode = await startTestNode("hostile-archives");
  node = testNode.node;
});

after(() => testNode.close());

function deploy(name: string, archive: Uint8Array) {
  return node.app.inject({
    method: "PUT",
    url: `/v1/projects/default/functions/${name}`,
    headers: { authorization, "content-type": "application/gzip" },
    payload: Buffer.from(archive),
  });
}

async function listFunctions(): Promise<unknown> {
  const response = await node.app.inject({
    url: "/v1/projects/default/functions",
    headers: { authorization },
  });
  return response.json();
}

/** Deploys `archive`, expects `status` and `code`, and that no function was created. */
async function assertRefused(archive: Uint8Array, status: number, code: string): Promise<ErrorBody> {
  const before = await listFunctions();
  const response = await deploy("hostile", archive);
  assert.equal(response.statusCode, status, response.body);
  const body = response.json<ErrorBody>();
  assert.equal(body.error.code, code, body.error.message);
  assert.deepEqual(await listFunctions(), before, "the refused deploy changed the functions");
  return body;
}

test("a kiln.json reached through a chain of harmless-looking symlinks cannot read /etc/shadow", async () => {
  // From the node's scratch directory, l12 is the host's root: each link climbs one more level. Packed
  // from the top down, each link's target does not exist yet when it is made, so a check of the disk at
  // that moment finds nothing wrong with it.
  const chain: TarEntry[] = [{ path: "kiln.json", linkpath: "l12/etc/shadow" }];
  for (let level = 12; level >= 1; level--) chain.push({ path: `l${level}`, linkpath: `l${level - 1}/..` });
  const archive = createTarGz([index, ...chain, { path: "l0", linkpath: "." }]);
  const response = await deploy("hostile", archive);
  assert.equal(response.statusCode, 400, response.body);
  assert.equal(response.json<ErrorBody>().error.code, "INVALID_ARCHIVE");
  assert.doesNotMatch(response.body, /root:/);
  assert.match(response.json<ErrorBody>().error.message, /points outside the function directory/);
});

test("an archive that writes a file through its own symlink is 400 INVALID_ARCHIVE, not 500", async () => {
  const archive = createTarGz([index, { path: "lib", linkpath: "." }, { path: "lib/evil.js", content: "x" }]);
  const body = await assertRefused(archive, 400, "INVALID_ARCHIVE");
  assert.match(body.error.message, /'lib\/evil\.js' would be written through the symlink 'lib'/);
});

test("gzip bombs are refused with 413 quickly, and the node's memory does not grow with them", async (t) => {
  // 512 MiB of zeros announced in one header, and a small archive followed by 512 MiB of zeros no header
  // announces: each about half a megabyte on the wire.
  const bombs = [
    await createZeroBombTarGz("index.js", 512 * 1024 * 1024),
    await createZeroBombTarGz("index.js", 100, 512 * 1024 * 1024),
  ];
  for (const bomb of bombs) {
    assert.ok(bomb.length < 1024 * 1024, `the bomb is ${bomb.length} bytes`);
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 5);
    const started = performance.now();
    try {
      const body = await assertRefused(bomb, 413, "ARCHIVE_TOO_LARGE");
      assert.match(body.error.message, /unpacks to more than 256 MiB/);
    } finally {
      clearInterval(sampler);
    }
    const elapsedMs = performance.now() - started;
    const grownMb = (rssPeak - rssBefore) / 1024 / 1024;
    t.diagnostic(`refused after ${elapsedMs.toFixed(0)} ms, RSS grew by ${grownMb.toFixed(1)} MB at most`);
    assert.ok(elapsedMs < 5000, `refused after ${elapsedMs} ms`);
    assert.ok(grownMb < 48, `the node's RSS grew by ${grownMb.toFixed(0)} MB`);
  }
});

test("an archive with more than 10,000 entries is 413 ARCHIVE_TOO_LARGE", async () => {
  const links = Array.from({ length: 10_000 }, (_, i): TarEntry => ({ path: `l${i}`, linkpath: "index.js" }));
  const body = await assertRefused(createTarGz([index, ...links]), 413, "ARCHIVE_TOO_LARGE");
  assert.match(body.error.message, /more than 10000 entries/);
});

test("an archive of an empty directory is 400 INVALID_ARCHIVE saying it holds no files", async () => {
  const archive = createTarGz([{ path: "./", directory: true }]);
  const body = await assertRefused(archive, 400, "INVALID_ARCHIVE");
  assert.equal(body.error.message, "the function archive holds no files");
});

test("a kiln.json that is not JSON is refused with where it breaks, never with its content", async () => {
  const secret = "root:$6$not-a-real-hash:19000:0:99999:7:::";
  const archive = createTarGz([index, { path: "kiln.json", content: `{\n  "timeoutS": 5,\n${secret}\n}` }]);
  const body = await assertRefused(archive, 400, "INVALID_FUNCTION_CONFIG");
  assert.equal(body.error.message, "kiln.json is not valid JSON (at line 3, column 1)");
});
