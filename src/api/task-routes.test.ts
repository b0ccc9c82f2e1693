/**
 * In-process tests (`app.inject`, no socket) of the task routes against a real node in a temp data
 * directory: input validation, payload limits, batches that are all-or-nothing, idempotency keys,
 * cancel and retry conflicts, and list cursors. The function is paused, so no task ever starts: every
 * task stays as the API left it, and a refused request must leave the task list unchanged.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import type { RunningNode } from "../main.js";
import { deployPausedHello, startTestNode, type TestNode } from "./test-node.js";

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

interface TaskBody {
  id: string;
  state: string;
  idempotencyKey: string | null;
  created?: boolean;
}

interface TaskPageBody {
  tasks: TaskBody[];
  nextCursor: string | null;
}

const authorization = "Bearer test-token";
const oneMiB = 1024 * 1024;
let testNode: TestNode;
let node: RunningNode;

before(async () => {
  testNode = await startTestNode("tasks");
  node = testNode.node;
  await deployPausedHello(testNode);
});

after(() => testNode.close());

function send(request: InjectOptions): Promise<LightMyRequestResponse> {
  return node.app.inject({ ...request, headers: { authorization, ...request.headers } });
}

function createTasks(body: unknown): Promise<LightMyRequestResponse> {
  return send({
    method: "POST",
    url: "/v1/projects/default/tasks",
    payload: body as InjectOptions["payload"],
  });
}

async function createTask(input: Record<string, unknown>): Promise<TaskBody> {
  const response = await createTasks({ function: "hello", ...input });
  assert.equal(response.statusCode, 201, response.body);
  return response.json<{ task: TaskBody }>().task;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await send({ url });
  assert.equal(response.statusCode, 200, response.body);
  return response.json<T>();
}

/** What a user can list: the tasks (with their states) and the functions of the default project. */
async function readState(): Promise<unknown> {
  return {
    tasks: await getJson("/v1/projects/default/tasks?limit=1000"),
    functions: await getJson("/v1/projects/default/functions"),
  };
}

async function assertRejected(
  request: () => Promise<LightMyRequestResponse>,
  status: number,
  code: string,
): Promise<ErrorBody> {
  const before = await readState();
  const response = await request();
  assert.equal(response.statusCode, status, response.body);
  const body = response.json<ErrorBody>();
  assert.equal(body.error.code, code, body.error.message);
  assert.deepEqual(await readState(), before, "the rejected request changed the task list");
  return body;
}

test("a task for an unknown function is 404 FUNCTION_NOT_FOUND, alone or anywhere in a batch", async () => {
  await assertRejected(() => createTasks({ function: "missing" }), 404, "FUNCTION_NOT_FOUND");
  const body = await assertRejected(
    () => createTasks({ tasks: [{ function: "hello" }, { function: "missing" }, { function: "hello" }] }),
    404,
    "FUNCTION_NOT_FOUND",
  );
  assert.deepEqual(body.error.details, { index: 1 });
});

test("a payload over 1 MiB is 413 PAYLOAD_TOO_LARGE", async () => {
  // JSON.stringify adds the two quotes: one byte over the limit.
  const payload = "x".repeat(oneMiB - 1);
  const body = await assertRejected(
    () => createTasks({ function: "hello", payload }),
    413,
    "PAYLOAD_TOO_LARGE",
  );
  assert.deepEqual(body.error.details, { index: 0, bytes: oneMiB + 1, limit: oneMiB });
});

test("a batch whose third task has a payload over 1 MiB creates none of them", async () => {
  const tasks = [
    { function: "hello", payload: { n: 1 } },
    { function: "hello", payload: { n: 2 } },
    { function: "hello", payload: { blob: "x".repeat(oneMiB) } },
    { function: "hello", payload: { n: 4 } },
  ];
  const body = await assertRejected(() => createTasks({ tasks }), 413, "PAYLOAD_TOO_LARGE");
  assert.equal((body.error.details as { index: number }).index, 2);
});

const invalidBodies: { name: string; body: unknown }[] = [
  { name: "a negative delayS", body: { function: "hello", delayS: -1 } },
  { name: "a delayS over 7 days", body: { function: "hello", delayS: 7 * 24 * 3600 + 1 } },
  { name: "priority 7", body: { function: "hello", priority: 7 } },
  { name: "timeoutS 3601", body: { function: "hello", timeoutS: 3601 } },
  { name: "an unknown field", body: { function: "hello", delay: 10 } },
  { name: "no function", body: { payload: 1 } },
  { name: "an invalid function name", body: { function: "Hello World" } },
  { name: "an empty batch", body: { tasks: [] } },
  { name: "a NUL character in its label", body: { function: "hello", label: "a\u0000b" } },
  { name: "a NUL character in its idempotencyKey", body: { function: "hello", idempotencyKey: "\u0000" } },
  {
    name: "a batch with one invalid task",
    body: { tasks: [{ function: "hello" }, { function: "hello", priority: 3 }] },
  },
  {
    name: "a batch of 10,001 tasks",
    body: { tasks: Array.from({ length: 10_001 }, () => ({ function: "hello" })) },
  },
];

for (const invalid of invalidBodies) {
  test(`a task body with ${invalid.name} is 400 BAD_REQUEST and creates nothing`, async () => {
    await assertRejected(() => createTasks(invalid.body), 400, "BAD_REQUEST");
  });
}

test("a repeated idempotencyKey returns the same task with created: false", async () => {
  const before = await getJson<TaskPageBody>("/v1/projects/default/tasks?limit=1000");
  const first = await createTask({ idempotencyKey: "order-42", delayS: 3600 });
  assert.equal(first.created, true);
  const again = await createTask({ idempotencyKey: "order-42", delayS: 3600 });
  assert.equal(again.created, false);
  assert.equal(again.id, first.id);
  const batch = await createTasks({ tasks: [{ function: "hello", idempotencyKey: "order-42" }] });
  assert.equal(batch.statusCode, 201, batch.body);
  assert.deepEqual(
    batch.json<{ tasks: TaskBody[] }>().tasks.map((task) => [task.id, task.created]),
    [[first.id, false]],
  );
  const after = await getJson<TaskPageBody>("/v1/projects/default/tasks?limit=1000");
  assert.equal(after.tasks.length, before.tasks.length + 1);
});

test("an unknown task id is 404 TASK_NOT_FOUND on every task route", async () => {
  const id = "00000000-0000-4000-8000-000000000000";
  const base = `/v1/projects/default/tasks/${id}`;
  for (const request of [
    { url: base },
    { url: `${base}/wait?timeoutS=0` },
    { url: `${base}/log` },
    { method: "POST", url: `${base}/cancel` },
    { method: "POST", url: `${base}/retry` },
  ] satisfies InjectOptions[]) {
    await assertRejected(() => send(request), 404, "TASK_NOT_FOUND");
  }
});

test("cancelling a finished task is 409 TASK_ALREADY_FINISHED", async () => {
  const task = await createTask({ delayS: 3600 });
  assert.equal(task.state, "delayed");
  const cancelled = await send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/cancel` });
  assert.equal(cancelled.statusCode, 200, cancelled.body);
  assert.equal(cancelled.json<TaskBody>().state, "cancelled");
  await assertRejected(
    () => send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/cancel` }),
    409,
    "TASK_ALREADY_FINISHED",
  );
});

test("retrying a delayed task is 409 TASK_NOT_FINISHED", async () => {
  const task = await createTask({ delayS: 3600 });
  assert.equal(task.state, "delayed");
  await assertRejected(
    () => send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/retry` }),
    409,
    "TASK_NOT_FINISHED",
  );
});

test("retrying a queued task is 409 TASK_NOT_FINISHED", async () => {
  const task = await createTask({});
  assert.equal(task.state, "queued");
  await assertRejected(
    () => send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/retry` }),
    409,
    "TASK_NOT_FINISHED",
  );
});

test("retrying a cancelled task queues it again", async () => {
  const task = await createTask({ delayS: 3600 });
  await send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/cancel` });
  const retried = await send({ method: "POST", url: `/v1/projects/default/tasks/${task.id}/retry` });
  assert.equal(retried.statusCode, 200, retried.body);
  assert.equal(retried.json<TaskBody>().state, "queued");
});

test("the task list pages with nextCursor", async () => {
  const created = [];
  for (let n = 0; n < 3; n++) created.push(await createTask({ label: "paging", delayS: 3600 }));
  const first = await getJson<TaskPageBody>("/v1/projects/default/tasks?label=paging&limit=2");
  assert.deepEqual(
    first.tasks.map((task) => task.id),
    [created[2]?.id, created[1]?.id],
  );
  assert.notEqual(first.nextCursor, null);
  const second = await getJson<TaskPageBody>(
    `/v1/projects/default/tasks?label=paging&limit=2&cursor=${first.nextCursor}`,
  );
  assert.deepEqual(
    second.tasks.map((task) => task.id),
    [created[0]?.id],
  );
  assert.equal(second.nextCursor, null);
});

test("an invalid list cursor is 400 BAD_REQUEST", async () => {
  for (const cursor of ["not-a-cursor", Buffer.from("seq:abc").toString("base64url"), "%00"]) {
    await assertRejected(
      () => send({ url: `/v1/projects/default/tasks?cursor=${cursor}` }),
      400,
      "BAD_REQUEST",
    );
  }
});
