/**
 * In-process tests (`app.inject`, no socket) of what every route shares: bearer auth, the public health
 * check and OpenAPI document, unknown routes and projects, and JSON body parsing. They run against a real
 * node built by `startNode` in a temp data directory.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import type { RunningNode } from "../main.js";
import { deployPausedHello, startTestNode, type TestNode } from "./test-node.js";

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

const token = "test-token";
let testNode: TestNode;
let node: RunningNode;

before(async () => {
  testNode = await startTestNode("server");
  node = testNode.node;
  await deployPausedHello(testNode);
});

after(() => testNode.close());

async function getJson(url: string): Promise<unknown> {
  const response = await node.app.inject({ url, headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.statusCode, 200, response.body);
  return response.json();
}

/** What a user can list: the tasks and functions of the default project. */
async function readState(): Promise<unknown> {
  return {
    tasks: await getJson("/v1/projects/default/tasks?limit=1000"),
    functions: await getJson("/v1/projects/default/functions"),
    revisions: await getJson("/v1/projects/default/functions/hello/revisions"),
  };
}

/** Sends `request` as is, expects the error `code` with `status`, and checks that nothing changed. */
async function assertRejected(request: InjectOptions, status: number, code: string): Promise<ErrorBody> {
  const before = await readState();
  const response = await node.app.inject(request);
  assert.equal(response.statusCode, status, response.body);
  const body = response.json<ErrorBody>();
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.deepEqual(await readState(), before, "the rejected request changed what the API lists");
  return body;
}

const createTask = {
  method: "POST",
  url: "/v1/projects/default/tasks",
  payload: { function: "hello" },
} as const satisfies InjectOptions;

test("a request without a token is refused with 401 UNAUTHORIZED", async () => {
  await assertRejected(createTask, 401, "UNAUTHORIZED");
  await assertRejected({ url: "/v1/projects/default/functions" }, 401, "UNAUTHORIZED");
});

test("a request with a wrong or malformed token is refused with 401 UNAUTHORIZED", async () => {
  for (const authorization of [`Bearer ${token}x`, "Bearer ", `Basic ${token}`, token]) {
    await assertRejected({ ...createTask, headers: { authorization } }, 401, "UNAUTHORIZED");
  }
});

test("/healthz answers without a token and reports the isolation in force", async () => {
  const response = await node.app.inject({ url: "/healthz" });
  assert.equal(response.statusCode, 200, response.body);
  const health = response.json<{ status: string; isolation: string; sandboxes: { sandboxes: number } }>();
  assert.equal(health.status, "ok");
  assert.equal(health.isolation, node.isolation);
  assert.equal(health.sandboxes.sandboxes, 0, "no sandbox runs before any task");
  assert.ok(["strong", "process"].includes(node.isolation));
});

test("/openapi.json is an OpenAPI 3 document with the task and function paths, served without a token", async () => {
  const response = await node.app.inject({ url: "/openapi.json" });
  assert.equal(response.statusCode, 200, response.body);
  assert.match(String(response.headers["content-type"]), /^application\/json/);
  const document = response.json<{ openapi: string; paths: Record<string, unknown> }>();
  assert.match(document.openapi, /^3\./);
  for (const route of [
    "/v1/projects/{project}/tasks",
    "/v1/projects/{project}/tasks/{id}",
    "/v1/projects/{project}/tasks/{id}/cancel",
    "/v1/projects/{project}/tasks/{id}/retry",
    "/v1/projects/{project}/functions",
    "/v1/projects/{project}/functions/{name}",
    "/v1/projects/{project}/functions/{name}/rollback",
  ]) {
    assert.ok(route in document.paths, `the document has no path ${route}`);
  }
  assert.ok(!("/healthz" in document.paths), "internal routes stay out of the document");
});

test("an unknown route with a valid token is 404 ROUTE_NOT_FOUND", async () => {
  const headers = { authorization: `Bearer ${token}` };
  await assertRejected({ url: "/v1/nothing-here", headers }, 404, "ROUTE_NOT_FOUND");
  await assertRejected(
    { method: "DELETE", url: "/v1/projects/default/functions/hello", headers },
    404,
    "ROUTE_NOT_FOUND",
  );
});

test("an unknown route without a token is 401, so routes cannot be probed anonymously", async () => {
  await assertRejected({ url: "/v1/nothing-here" }, 401, "UNAUTHORIZED");
});

test("a route under an unknown project is 404 PROJECT_NOT_FOUND", async () => {
  const headers = { authorization: `Bearer ${token}` };
  await assertRejected({ url: "/v1/projects/nope/functions", headers }, 404, "PROJECT_NOT_FOUND");
  await assertRejected({ url: "/v1/projects/nope/tasks", headers }, 404, "PROJECT_NOT_FOUND");
  await assertRejected({ ...createTask, url: "/v1/projects/nope/tasks", headers }, 404, "PROJECT_NOT_FOUND");
});

test("a malformed JSON body is 400 INVALID_JSON", async () => {
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  for (const payload of ['{"function": "hello"', "{function: 'hello'}", ""]) {
    await assertRejected({ ...createTask, headers, payload }, 400, "INVALID_JSON");
  }
});
