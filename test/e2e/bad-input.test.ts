/** Requests a server must refuse, over real HTTP: each gets its status and stable code, and changes nothing. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { KilnFunction, Task } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer, type KilnServer } from "./kiln-server.js";
import { listAllTasks } from "./task-listing.js";
import { createTarGz } from "./tar-gz.js";

interface RawRequest {
  method: string;
  path: string;
  /** The token to send; the server's when unset, none when null. */
  token?: string | null;
  body?: string | Uint8Array;
  contentType?: string;
}

interface RawAnswer {
  status: number;
  body: unknown;
}

const tasksPath = "/v1/projects/default/tasks";
const oneMiB = 1024 * 1024;

/** A function directory whose one unsafe entry writes outside it. */
const escapingArchive = createTarGz([
  { path: "kiln.json", content: '{ "runtime": "node", "entry": "index.js" }' },
  { path: "index.js", content: "export default () => 'ok';\n" },
  { path: "../evil.js", content: "export default () => 'escaped';\n" },
]);

/** Every hook and test of the suite is bounded on its own. */
const step = { timeout: 60_000 };

describe("bad input", { timeout: 120_000 }, () => {
  let server: KilnServer;
  let tasksBefore: Task[];
  let functionsBefore: KilnFunction[];

  async function send(request: RawRequest): Promise<RawAnswer> {
    const token = request.token === undefined ? server.token : request.token;
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (request.contentType !== undefined) headers["content-type"] = request.contentType;
    const response = await fetch(server.url + request.path, {
      method: request.method,
      headers,
      body: request.body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: the assertions below will say so
    }
    return { status: response.status, body };
  }

  const postJson = (body: unknown, token?: string | null): RawRequest => ({
    method: "POST",
    path: tasksPath,
    body: JSON.stringify(body),
    contentType: "application/json",
    ...(token === undefined ? {} : { token }),
  });

  before(async () => {
    server = await startKilnServer();
    const { client } = server;
    await deployTestFunction(client, "echo");
    // The hand-made archive format itself is accepted: only the escaping entry can make the server refuse it.
    const handMade = createTarGz([
      { path: "kiln.json", content: '{ "runtime": "node", "entry": "index.js" }' },
      { path: "index.js", content: "export default () => 'ok';\n" },
    ]);
    const deployed = await send({
      method: "PUT",
      path: "/v1/projects/default/functions/hand-made",
      body: handMade,
      contentType: "application/gzip",
    });
    assert.equal(deployed.status, 201, `the hand-made archive was refused: ${JSON.stringify(deployed.body)}`);
    const task = await client.createTask({ function: "echo", payload: { before: true } });
    assert.equal((await client.waitForTask(task.id, { timeoutS: 30 })).state, "succeeded");
    tasksBefore = await listAllTasks(client, {});
    functionsBefore = await client.listFunctions();
  }, step);
  after(() => server?.stop(), step);

  const cases: { name: string; request: () => RawRequest; status: number; code: string }[] = [
    {
      name: "a task body that is not valid JSON",
      request: () => ({
        method: "POST",
        path: tasksPath,
        body: '{"function": "echo",',
        contentType: "application/json",
      }),
      status: 400,
      code: "INVALID_JSON",
    },
    {
      name: "a task of a function that does not exist",
      request: () => postJson({ function: "no-such-function", payload: 1 }),
      status: 404,
      code: "FUNCTION_NOT_FOUND",
    },
    {
      name: "a payload over 1 MiB",
      request: () => postJson({ function: "echo", payload: "x".repeat(oneMiB) }),
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
    },
    {
      name: "a batch in which one payload is over 1 MiB",
      request: () =>
        postJson({
          tasks: [
            { function: "echo", payload: 1 },
            { function: "echo", payload: "x".repeat(oneMiB) },
          ],
        }),
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
    },
    {
      name: "a negative delayS",
      request: () => postJson({ function: "echo", delayS: -1 }),
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "priority 7",
      request: () => postJson({ function: "echo", priority: 7 }),
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "a request without a token",
      request: () => postJson({ function: "echo" }, null),
      status: 401,
      code: "UNAUTHORIZED",
    },
    {
      name: "a request with a wrong token",
      request: () => postJson({ function: "echo" }, `${server.token}x`),
      status: 401,
      code: "UNAUTHORIZED",
    },
    {
      name: "a function archive with an entry named ../evil.js",
      request: () => ({
        method: "PUT",
        path: "/v1/projects/default/functions/evil",
        body: escapingArchive,
        contentType: "application/gzip",
      }),
      status: 400,
      code: "INVALID_ARCHIVE",
    },
  ];

  for (const { name, request, status, code } of cases) {
    test(`${name} is refused with ${status} ${code}`, step, async () => {
      const answer = await send(request());
      assert.equal(answer.status, status, `answer: ${JSON.stringify(answer.body).slice(0, 500)}`);
      const error = (answer.body as { error?: { code?: unknown; message?: unknown; details?: unknown } })
        .error;
      assert.equal(error?.code, code, `answer: ${JSON.stringify(answer.body).slice(0, 500)}`);
      assert.equal(typeof error.message, "string");
      assert.ok("details" in error, "the error has no details field");
    });
  }

  test("after the refused requests the task list and the function list are unchanged", step, async () => {
    const { client } = server;
    assert.deepEqual(await listAllTasks(client, {}), tasksBefore);
    assert.deepEqual(await client.listFunctions(), functionsBefore);
    await assert.rejects(client.getFunction("evil"), { code: "FUNCTION_NOT_FOUND" });
  });

  test("the archive's escaping entry was written nowhere", step, async () => {
    const scratchDir = path.join(server.dataDir, "scratch");
    assert.equal(existsSync(path.join(scratchDir, "evil.js")), false);
    assert.equal(existsSync(path.join(server.dataDir, "evil.js")), false);
    assert.deepEqual(await readdir(scratchDir), [], "the refused deploy left files in the scratch directory");
  });
});
