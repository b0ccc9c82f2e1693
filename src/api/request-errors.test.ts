/**
 * In-process tests of how bad input is answered: every validation failure names the field as the user
 * wrote it, says what was wrong and what is allowed, all at once; JSON nested too deep is a 400, not a
 * 500; a callback URL into the node's own network is refused. A refused request creates nothing.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import { packFunction } from "../client/pack-function.js";
import { deployPausedHello, startTestNode, testToken, type TestNode } from "./test-node.js";

interface ErrorBody {
  error: { code: string; message: string; details: { errors?: { field: string; message: string }[] } | null };
}

const headers = { authorization: `Bearer ${testToken}` };
const tasksUrl = "/v1/projects/default/tasks";
let testNode: TestNode;

before(async () => {
  testNode = await startTestNode("request-errors");
  await deployPausedHello(testNode);
});

after(() => testNode.close());

async function countTasks(): Promise<number> {
  const response = await testNode.node.app.inject({ url: `${tasksUrl}?limit=1000`, headers });
  return response.json<{ tasks: unknown[] }>().tasks.length;
}

async function refused(request: InjectOptions, status: number, code: string): Promise<ErrorBody["error"]> {
  const tasksBefore = await countTasks();
  const response = await testNode.node.app.inject({
    ...request,
    headers: { ...headers, ...request.headers },
  });
  assert.equal(response.statusCode, status, response.body);
  const { error } = response.json<ErrorBody>();
  assert.equal(error.code, code, error.message);
  assert.equal(await countTasks(), tasksBefore, "a refused request created a task");
  return error;
}

function fields(error: ErrorBody["error"]): Record<string, string> {
  return Object.fromEntries((error.details?.errors ?? []).map(({ field, message }) => [field, message]));
}

test("a batch of 10,001 tasks is refused for its size, not for a missing 'function'", async () => {
  const tasks = Array.from({ length: 10_001 }, () => ({ function: "hello" }));
  const error = await refused({ method: "POST", url: tasksUrl, payload: { tasks } }, 400, "BAD_REQUEST");
  assert.equal(error.message, "tasks: at most 10000 tasks per call (got 10001)");
  assert.deepEqual(fields(error), { tasks: "tasks: at most 10000 tasks per call (got 10001)" });
});

test("every failure of a batch is reported at once, each named by its task's index", async () => {
  const payload = { tasks: [{ function: "hello" }, { function: "hello", delayS: -1 }, { label: "x" }] };
  const error = await refused({ method: "POST", url: tasksUrl, payload }, 400, "BAD_REQUEST");
  assert.deepEqual(fields(error), {
    "tasks[1].delayS": "tasks[1].delayS must be at least 0 (got -1)",
    "tasks[2].function": "tasks[2].function is required",
  });
  assert.equal(error.message, "tasks[1].delayS must be at least 0 (got -1); tasks[2].function is required");
  assert.doesNotMatch(error.message, /body\/|\/tasks|must have required property/);
});

test("enums are listed, unknown fields name the allowed ones, limits are stated", async () => {
  const payload = { function: "hello", priority: 5, retries: 3 };
  const error = await refused({ method: "POST", url: tasksUrl, payload }, 400, "BAD_REQUEST");
  assert.equal(fields(error).priority, "priority must be one of: 0, 1, 2 (got 5)");
  assert.equal(
    fields(error).retries,
    "retries: unknown field (allowed: function, payload, priority, delayS, timeoutS, label, idempotencyKey, callbackUrl)",
  );

  const patch = await refused(
    {
      method: "PATCH",
      url: "/v1/projects/default/functions/hello",
      payload: { retries: 11, memoryMb: "lots", env: { "NOT-A-NAME": "1" } },
    },
    400,
    "BAD_REQUEST",
  );
  assert.equal(fields(patch).retries, "retries must be at most 10 (got 11)");
  assert.equal(fields(patch).memoryMb, 'memoryMb must be an integer (got "lots")');
  assert.match(
    fields(patch)['env["NOT-A-NAME"]'] ?? "",
    /is not an allowed name \(environment variable names/,
  );
});

test("query and path failures name the parameter and describe what it must look like", async () => {
  const list = await refused({ method: "GET", url: `${tasksUrl}?state=done&limit=0` }, 400, "BAD_REQUEST");
  assert.equal(
    fields(list).state,
    'state must be one of: delayed, queued, running, succeeded, failed, timed_out, out_of_memory, cancelled (got "done")',
  );
  assert.equal(fields(list).limit, "limit must be at least 1 (got 0)");

  const rollback = await refused(
    { method: "POST", url: "/v1/projects/default/functions/hello/rollback", payload: { revision: "abc" } },
    400,
    "BAD_REQUEST",
  );
  assert.equal(rollback.message, 'revision must be a 64-character lowercase hex digest (got "abc")');

  const name = await refused(
    { method: "GET", url: "/v1/projects/default/functions/Hello" },
    400,
    "BAD_REQUEST",
  );
  assert.equal(
    name.message,
    'name must be a function name: lowercase letters, digits, - and _, starting with a letter or digit, at most 63 characters (got "Hello")',
  );
});

test("a kiln.json that fails validation is described with the same words", async () => {
  const dir = path.join(testNode.root, "bad-manifest");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "kiln.json"), JSON.stringify({ runtime: "python", memoryMb: 1, color: 1 }));
  await writeFile(path.join(dir, "index.js"), "export default () => 1;\n");
  const error = await refused(
    {
      method: "PUT",
      url: "/v1/projects/default/functions/bad-manifest",
      headers: { "content-type": "application/gzip" },
      payload: Buffer.from(await packFunction(dir)),
    },
    400,
    "INVALID_FUNCTION_CONFIG",
  );
  assert.equal(fields(error).runtime, 'runtime must be one of: node, exec (got "python")');
  assert.equal(fields(error).memoryMb, "memoryMb must be at least 64 (got 1)");
  assert.match(fields(error).color ?? "", /^color: unknown key \(allowed: name, runtime, entry, memoryMb/);
  assert.match(error.message, /^kiln\.json: /);
});

/** `[[[…1…]]]` nested `depth` deep. */
function nested(depth: number): string {
  return "[".repeat(depth) + "1" + "]".repeat(depth);
}

test("a payload nested ~6,000 deep is 400 JSON_TOO_DEEP, alone, in a batch or invoked, never a 500", async () => {
  const json = { "content-type": "application/json" };
  const deep = nested(6_000);
  await refused(
    { method: "POST", url: tasksUrl, headers: json, payload: `{"function":"hello","payload":${deep}}` },
    400,
    "JSON_TOO_DEEP",
  );
  await refused(
    {
      method: "POST",
      url: tasksUrl,
      headers: json,
      payload: `{"tasks":[{"function":"hello","payload":${deep}}]}`,
    },
    400,
    "JSON_TOO_DEEP",
  );
  await refused(
    { method: "POST", url: "/v1/projects/default/functions/hello/invoke", headers: json, payload: deep },
    400,
    "JSON_TOO_DEEP",
  );
});

test("a payload just over 100 deep is refused with its task named; 100 deep is accepted", async () => {
  const json = { "content-type": "application/json" };
  const error = await refused(
    {
      method: "POST",
      url: tasksUrl,
      headers: json,
      payload: `{"tasks":[{"function":"hello"},{"function":"hello","payload":${nested(101)}}]}`,
    },
    400,
    "JSON_TOO_DEEP",
  );
  assert.equal(error.message, "tasks[1].payload nests arrays and objects more than 100 deep");
  const accepted = await testNode.node.app.inject({
    method: "POST",
    url: tasksUrl,
    headers: { ...headers, ...json },
    payload: `{"function":"hello","payload":${nested(100)}}`,
  });
  assert.equal(accepted.statusCode, 201, accepted.body);
});

test("a callback URL to a private, loopback or metadata address is 400 CALLBACK_ADDRESS_NOT_ALLOWED", async () => {
  for (const callbackUrl of [
    "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:192.168.0.1]/hook",
    "http://0.0.0.0/hook",
  ]) {
    const error = await refused(
      { method: "POST", url: tasksUrl, payload: { function: "hello", callbackUrl } },
      400,
      "CALLBACK_ADDRESS_NOT_ALLOWED",
    );
    assert.match(error.message, /^callbackUrl: .* is an? .*; callbacks go to public addresses only/);
  }
  const accepted = await testNode.node.app.inject({
    method: "POST",
    url: tasksUrl,
    headers,
    payload: { function: "hello", callbackUrl: "https://93.184.215.14/hook" },
  });
  assert.equal(accepted.statusCode, 201, accepted.body);
});
