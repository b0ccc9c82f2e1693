/**
 * In-process tests (`app.inject`, no socket) of the function routes against a real node in a temp data
 * directory: deploys (archives that are unsafe or unreadable, kiln.json that is invalid), settings
 * changes, env secrecy and rollbacks. Every refused request must leave functions and revisions unchanged.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { Header, Parser } from "tar";
import { packFunction } from "../client/pack-function.js";
import type { RunningNode } from "../main.js";
import { startTestNode, type TestNode } from "./test-node.js";

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

interface FunctionBody {
  name: string;
  currentRevision: string;
  timeoutS: number;
  envKeys: string[];
}

interface DeployBody {
  function: FunctionBody;
  revision: { digest: string; current: boolean };
  created: boolean;
}

const authorization = "Bearer test-token";
const helloSource = "export default async (payload) => payload;\n";
let testNode: TestNode;
let node: RunningNode;
let root: string;

before(async () => {
  testNode = await startTestNode("functions");
  ({ node, root } = testNode);
  const deployed = await deploy("hello", await packFiles({ "index.js": helloSource }));
  assert.equal(deployed.statusCode, 201, deployed.body);
});

after(() => testNode.close());

/** Packs a function directory holding `files` (relative path → content) with the SDK's packer. */
async function packFiles(files: Record<string, string>): Promise<Buffer> {
  const dir = await mkdtemp(path.join(root, "function-"));
  for (const [relative, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, relative)), { recursive: true });
    await writeFile(path.join(dir, relative), content);
  }
  return Buffer.from(await packFunction(dir));
}

interface RawEntry {
  path: string;
  type: "File" | "SymbolicLink";
  content?: string;
  linkpath?: string;
}

/** A tar.gz written header by header, so that it can hold entries `tar` itself would refuse to pack. */
function craftArchive(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.content ?? "");
    const header = new Header({
      path: entry.path,
      type: entry.type,
      linkpath: entry.linkpath,
      size: data.length,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    if (header.encode(block, 0)) throw new Error(`'${entry.path}' would need a pax header`);
    blocks.push(block, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** The entries of an archive as `path` or `path -> linkpath`, exactly as a reader sees them. */
async function listEntries(archive: Buffer): Promise<string[]> {
  const entries: string[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      entries.push(entry.linkpath ? `${entry.path} -> ${entry.linkpath}` : entry.path);
      entry.resume();
    },
  });
  await pipeline(Readable.from([archive]), parser);
  return entries;
}

function deploy(name: string, archive: Buffer, contentType = "application/gzip") {
  return node.app.inject({
    method: "PUT",
    url: `/v1/projects/default/functions/${name}`,
    headers: { authorization, "content-type": contentType },
    payload: archive,
  });
}

async function getJson<T>(url: string): Promise<T> {
  const response = await node.app.inject({ url, headers: { authorization } });
  assert.equal(response.statusCode, 200, response.body);
  return response.json<T>();
}

/** What a user can list: every function of the default project with its revisions. */
async function readState(): Promise<unknown> {
  const { functions } = await getJson<{ functions: FunctionBody[] }>("/v1/projects/default/functions");
  const revisions: Record<string, unknown> = {};
  for (const fn of functions) {
    revisions[fn.name] = await getJson(`/v1/projects/default/functions/${fn.name}/revisions`);
  }
  return { functions, revisions };
}

/** Sends `request` (a thunk, so the token and body are the test's), expects `code` and no change. */
async function assertRejected(
  send: () => Promise<LightMyRequestResponse>,
  status: number,
  code: string,
): Promise<ErrorBody> {
  const before = await readState();
  const response = await send();
  assert.equal(response.statusCode, status, response.body);
  const body = response.json<ErrorBody>();
  assert.equal(body.error.code, code, body.error.message);
  assert.deepEqual(await readState(), before, "the rejected request changed functions or revisions");
  return body;
}

function patch(name: string, body: unknown) {
  return node.app.inject({
    method: "PATCH",
    url: `/v1/projects/default/functions/${name}`,
    headers: { authorization },
    payload: body as InjectOptions["payload"],
  });
}

test("deploying a new function answers 201 created, and the same archive again 200 not created", async () => {
  const archive = await packFiles({ "index.js": helloSource, "kiln.json": '{ "timeoutS": 5 }' });
  const first = await deploy("greeter", archive);
  assert.equal(first.statusCode, 201, first.body);
  const created = first.json<DeployBody>();
  assert.equal(created.created, true);
  assert.equal(created.function.name, "greeter");
  assert.equal(created.function.timeoutS, 5);
  assert.equal(created.function.currentRevision, created.revision.digest);
  assert.equal(created.revision.current, true);

  const second = await deploy("greeter", archive);
  assert.equal(second.statusCode, 200, second.body);
  const unchanged = second.json<DeployBody>();
  assert.equal(unchanged.created, false);
  assert.equal(unchanged.revision.digest, created.revision.digest);
  const { revisions } = await getJson<{ revisions: unknown[] }>(
    "/v1/projects/default/functions/greeter/revisions",
  );
  assert.equal(revisions.length, 1);
});

test("a body that is not a tar.gz is 400 INVALID_ARCHIVE", async () => {
  for (const archive of [
    Buffer.from("this is not a tarball"),
    gzipSync("gzip, but not a tar inside"),
    (await packFiles({ "index.js": helloSource })).subarray(0, 40),
  ]) {
    await assertRejected(() => deploy("hello", archive), 400, "INVALID_ARCHIVE");
    await assertRejected(() => deploy("fresh", archive), 400, "INVALID_ARCHIVE");
  }
});

test("a deploy with a JSON body is 415 UNSUPPORTED_MEDIA_TYPE", async () => {
  const send = () =>
    node.app.inject({
      method: "PUT",
      url: "/v1/projects/default/functions/hello",
      headers: { authorization },
      payload: { "index.js": helloSource },
    });
  await assertRejected(send, 415, "UNSUPPORTED_MEDIA_TYPE");
});

test("a deploy with a content type no parser takes is 415 UNSUPPORTED_MEDIA_TYPE", async () => {
  const archive = await packFiles({ "index.js": helloSource });
  await assertRejected(() => deploy("hello", archive, "application/x-tar"), 415, "UNSUPPORTED_MEDIA_TYPE");
});

const unsafeArchives: { name: string; entry: RawEntry; listed: string; mustNotExist: () => string }[] = [
  {
    name: "an entry whose path climbs out with ../",
    entry: { path: "../evil.js", type: "File", content: "pwned" },
    listed: "../evil.js",
    mustNotExist: () => path.join(root, "data", "scratch", "evil.js"),
  },
  {
    name: "an entry whose path climbs out from a subdirectory",
    entry: { path: "lib/../../evil.js", type: "File", content: "pwned" },
    listed: "lib/../../evil.js",
    mustNotExist: () => path.join(root, "data", "scratch", "evil.js"),
  },
  {
    name: "an entry with an absolute path",
    entry: { path: "/tmp/kiln-absolute-evil.js", type: "File", content: "pwned" },
    listed: "/tmp/kiln-absolute-evil.js",
    mustNotExist: () => "/tmp/kiln-absolute-evil.js",
  },
  {
    name: "a symlink to a path outside the function",
    entry: { path: "lib/outside.js", type: "SymbolicLink", linkpath: "../../outside.js" },
    listed: "lib/outside.js -> ../../outside.js",
    mustNotExist: () => path.join(root, "data", "scratch", "outside.js"),
  },
  {
    name: "a symlink to an absolute path",
    entry: { path: "passwd", type: "SymbolicLink", linkpath: "/etc/passwd" },
    listed: "passwd -> /etc/passwd",
    mustNotExist: () => path.join(root, "data", "scratch", "passwd"),
  },
];

for (const unsafe of unsafeArchives) {
  test(`an archive with ${unsafe.name} is 400 INVALID_ARCHIVE and creates nothing`, async () => {
    const archive = craftArchive([{ path: "index.js", type: "File", content: helloSource }, unsafe.entry]);
    // The archive must really carry the unsafe entry, or the test would prove nothing.
    assert.deepEqual(await listEntries(archive), ["index.js", unsafe.listed]);
    const body = await assertRejected(() => deploy("hello", archive), 400, "INVALID_ARCHIVE");
    assert.match(body.error.message, /outside the function directory/);
    await assertRejected(() => deploy("fresh", archive), 400, "INVALID_ARCHIVE");
    assert.equal(existsSync(unsafe.mustNotExist()), false, `${unsafe.mustNotExist()} was written`);
  });
}

test("the same archive without its unsafe entry deploys, so the refusals above are about that entry", async () => {
  const archive = craftArchive([{ path: "index.js", type: "File", content: helloSource }]);
  const response = await deploy("crafted", archive);
  assert.equal(response.statusCode, 201, response.body);
});

const invalidFunctions: { name: string; files: Record<string, string> }[] = [
  {
    name: "a kiln.json with memoryMb 1",
    files: { "kiln.json": '{ "memoryMb": 1 }', "index.js": helloSource },
  },
  {
    name: "a kiln.json with an unknown key",
    files: { "kiln.json": '{ "timeoutS": 5, "memory": 256 }', "index.js": helloSource },
  },
  {
    name: "a kiln.json that is not JSON",
    files: { "kiln.json": "{ runtime: node }", "index.js": helloSource },
  },
  { name: "an exec kiln.json without entry", files: { "kiln.json": '{ "runtime": "exec" }', "run.sh": "" } },
  {
    name: "a node function whose entry file is missing",
    files: { "kiln.json": '{ "entry": "main.js" }', "index.js": helloSource },
  },
  { name: "a node function without kiln.json or index.js", files: { "main.js": helloSource } },
];

for (const invalid of invalidFunctions) {
  test(`deploying ${invalid.name} is 400 INVALID_FUNCTION_CONFIG and creates nothing`, async () => {
    const archive = await packFiles(invalid.files);
    await assertRejected(() => deploy("hello", archive), 400, "INVALID_FUNCTION_CONFIG");
    await assertRejected(() => deploy("fresh", archive), 400, "INVALID_FUNCTION_CONFIG");
  });
}

test("a PATCH with timeoutS 3601 or retries 11 is 400 BAD_REQUEST and changes nothing", async () => {
  for (const body of [
    { timeoutS: 3601 },
    { retries: 11 },
    { timeoutS: 10, retries: 11 },
    { runtime: "exec" },
  ]) {
    await assertRejected(() => patch("hello", body), 400, "BAD_REQUEST");
  }
});

test("a PATCH or GET of an unknown function is 404 FUNCTION_NOT_FOUND", async () => {
  await assertRejected(() => patch("missing", { timeoutS: 10 }), 404, "FUNCTION_NOT_FOUND");
  await assertRejected(
    () => node.app.inject({ url: "/v1/projects/default/functions/missing", headers: { authorization } }),
    404,
    "FUNCTION_NOT_FOUND",
  );
});

test("env values never appear in any answer; envKeys lists their names", async () => {
  const secret = "s3cr3t";
  const patched = await patch("hello", { env: { SECRET: secret } });
  assert.equal(patched.statusCode, 200, patched.body);
  const bodies = [
    patched.body,
    (await node.app.inject({ url: "/v1/projects/default/functions/hello", headers: { authorization } })).body,
    (await node.app.inject({ url: "/v1/projects/default/functions", headers: { authorization } })).body,
    (
      await node.app.inject({
        url: "/v1/projects/default/functions/hello/revisions",
        headers: { authorization },
      })
    ).body,
    (await deploy("hello", await packFiles({ "index.js": helloSource }))).body,
  ];
  for (const body of bodies) assert.ok(!body.includes(secret), `the secret leaked in ${body}`);
  assert.deepEqual(patched.json<FunctionBody>().envKeys, ["SECRET"]);
  const fn = await getJson<FunctionBody>("/v1/projects/default/functions/hello");
  assert.deepEqual(fn.envKeys, ["SECRET"], "a redeploy keeps the env set by PATCH");
});

test("a rollback to an unknown digest is 404 REVISION_NOT_FOUND; to a known one it switches", async () => {
  const first = (await deploy("versions", await packFiles({ "index.js": helloSource }))).json<DeployBody>();
  const second = (
    await deploy("versions", await packFiles({ "index.js": `${helloSource}// v2\n` }))
  ).json<DeployBody>();
  assert.notEqual(first.revision.digest, second.revision.digest);
  const rollback = (revision: string) => () =>
    node.app.inject({
      method: "POST",
      url: "/v1/projects/default/functions/versions/rollback",
      headers: { authorization },
      payload: { revision },
    });
  await assertRejected(rollback("0".repeat(64)), 404, "REVISION_NOT_FOUND");
  // A revision of another function is not a revision of this one.
  const other = (
    await deploy("other", await packFiles({ "index.js": `${helloSource}// other\n` }))
  ).json<DeployBody>();
  await assertRejected(rollback(other.revision.digest), 404, "REVISION_NOT_FOUND");
  await assertRejected(rollback("not-a-digest"), 400, "BAD_REQUEST");

  const switched = await rollback(first.revision.digest)();
  assert.equal(switched.statusCode, 200, switched.body);
  assert.equal(switched.json<FunctionBody>().currentRevision, first.revision.digest);
});
