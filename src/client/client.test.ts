import assert from "node:assert/strict";
import { test } from "node:test";
import type { Task, TaskInput } from "./api-types.js";
import { createClient } from "./client.js";
import { createFakeFetch } from "./fake-fetch.js";
import { KilnApiError } from "./kiln-api-error.js";

const succeededHeaders = { "kiln-task-id": "t1", "kiln-attempt": "2", "kiln-start-latency-ms": "7" };

function fakeTask(id: string, state: Task["state"]): Task {
  return { id, state } as Task;
}

test("createTasks sends at most 10,000 tasks per request and reports progress", async () => {
  const { fetch, seen } = createFakeFetch((request) => {
    const { tasks } = request.body as { tasks: TaskInput[] };
    return { status: 201, body: { tasks: tasks.map((_, index) => fakeTask(String(index), "queued")) } };
  });
  const client = createClient({ url: "http://kiln.test/", token: "secret", fetch });
  const progress: number[] = [];
  const inputs = Array.from({ length: 25_000 }, () => ({ function: "hello" }));
  const tasks = await client.createTasks(inputs, { onProgress: (sent) => progress.push(sent) });
  assert.equal(tasks.length, 25_000);
  assert.deepEqual(
    seen.map((request) => (request.body as { tasks: unknown[] }).tasks.length),
    [10_000, 10_000, 5_000],
  );
  assert.deepEqual(progress, [10_000, 20_000, 25_000]);
  assert.equal(seen[0]?.url.pathname, "/v1/projects/default/tasks");
  assert.equal(seen[0]?.headers.get("authorization"), "Bearer secret");
});

test("waitForTask long-polls the task again until it is final", async () => {
  const states: Task["state"][] = ["running", "succeeded"];
  const { fetch, seen } = createFakeFetch(() => ({ body: fakeTask("t1", states.shift() ?? "succeeded") }));
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "p", fetch });
  const task = await client.waitForTask("t1", { timeoutS: 120 });
  assert.equal(task.state, "succeeded");
  assert.equal(seen.length, 2);
  assert.equal(seen[0]?.url.pathname, "/v1/projects/p/tasks/t1");
  assert.equal(seen[0]?.url.searchParams.get("wait"), "60");
});

test("getTask with waitS asks the server to hold the request; without it, it does not", async () => {
  const { fetch, seen } = createFakeFetch(() => ({ body: fakeTask("t1", "running") }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await client.getTask("t1", { waitS: 15 });
  await client.getTask("t1");
  assert.equal(seen[0]?.url.pathname, "/v1/projects/default/tasks/t1");
  assert.equal(seen[0]?.url.searchParams.get("wait"), "15");
  assert.equal(seen[1]?.url.searchParams.has("wait"), false);
});

test("invoke sends the payload as JSON with the wait options and resolves with the parsed result", async () => {
  const { fetch, seen } = createFakeFetch(() => ({ body: { greeting: "hi" }, headers: succeededHeaders }));
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "p", fetch });
  const outcome = await client.invoke(
    "hello",
    { name: "x" },
    { waitS: 5, timeoutS: 10, cancelOnDisconnect: true },
  );
  assert.deepEqual(outcome, {
    status: "succeeded",
    result: { greeting: "hi" },
    taskId: "t1",
    attempt: 2,
    startLatencyMs: 7,
  });
  const request = seen[0];
  assert.equal(request?.method, "POST");
  assert.equal(request?.url.pathname, "/v1/projects/p/functions/hello/invoke");
  assert.deepEqual(Object.fromEntries(request?.url.searchParams ?? []), {
    wait: "5",
    timeoutS: "10",
    cancelOnDisconnect: "true",
  });
  assert.equal(request?.headers.get("content-type"), "application/json");
  assert.deepEqual(request?.body, { name: "x" });
});

test("invoke sends a string payload as a JSON string and a text/plain result stays a string", async () => {
  const { fetch, seen } = createFakeFetch(() => ({
    text: "42",
    headers: { ...succeededHeaders, "content-type": "text/plain; charset=utf-8" },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  const outcome = await client.invoke("echo", "hello");
  assert.equal(outcome.status, "succeeded");
  assert.equal(outcome.status === "succeeded" && outcome.result, "42");
  assert.equal(seen[0]?.body, "hello", 'the body was the JSON string "hello"');
  assert.equal(seen[0]?.url.search, "", "no query without options");
});

test("invoke without a payload sends no body", async () => {
  const { fetch, seen } = createFakeFetch(() => ({ body: null, headers: succeededHeaders }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  const outcome = await client.invoke("hello");
  assert.equal(outcome.status === "succeeded" && outcome.result, null);
  assert.equal(seen[0]?.body, undefined);
  assert.equal(seen[0]?.headers.has("content-type"), false);
});

test("invoke resolves pending with the task when it outlives the wait", async () => {
  const task = fakeTask("t1", "running");
  const resultUrl = "/v1/projects/default/tasks/t1/wait";
  const { fetch } = createFakeFetch(() => ({ status: 202, body: { task, resultUrl } }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  assert.deepEqual(await client.invoke("slow", {}, { waitS: 1 }), { status: "pending", task, resultUrl });
});

test("invoke turns 429 into TOO_MANY_REQUESTS with the Retry-After seconds", async () => {
  const { fetch } = createFakeFetch(() => ({
    status: 429,
    body: { error: { code: "TOO_MANY_REQUESTS", message: "no sandbox", details: { taskId: "t1" } } },
    headers: { "retry-after": "3" },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.invoke("busy"), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "TOO_MANY_REQUESTS");
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterS, 3);
    assert.deepEqual(error.details, { taskId: "t1" });
    return true;
  });
});

test("invoke turns a function failure into FUNCTION_FAILED with the failure in details", async () => {
  const failure = { kind: "handler_error", message: "boom", retryable: true };
  const { fetch } = createFakeFetch(() => ({
    status: 502,
    body: {
      error: {
        code: "FUNCTION_FAILED",
        message: "boom",
        details: { taskId: "t1", state: "failed", failure },
      },
    },
    headers: { "kiln-function-error": "handler_error", "kiln-task-id": "t1" },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.invoke("boom"), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "FUNCTION_FAILED");
    assert.equal(error.status, 502);
    assert.equal(error.retryAfterS, null);
    assert.deepEqual(error.details, { taskId: "t1", state: "failed", failure });
    return true;
  });
});

test("invoke reports a 200 without the task headers as UNEXPECTED_RESPONSE", async () => {
  const { fetch } = createFakeFetch(() => ({ body: { ok: true } }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.invoke("hello"), { name: "KilnApiError", code: "UNEXPECTED_RESPONSE" });
});

/** A fetch that answers after `delayMs` unless its request is aborted first. */
function createSlowFetch(delayMs: number, answer: () => Response): typeof globalThis.fetch {
  return (_input, init) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(answer()), delayMs);
      init?.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(init.signal?.reason as Error);
      });
    });
}

test("the request timeout of invoke and of a long poll covers the wait they ask for", async () => {
  const fetch = createSlowFetch(
    200,
    () =>
      new Response(JSON.stringify(fakeTask("t1", "succeeded")), {
        headers: { "content-type": "application/json", ...succeededHeaders },
      }),
  );
  const client = createClient({ url: "http://kiln.test", token: "secret", requestTimeoutMs: 50, fetch });
  assert.equal((await client.invoke("hello", null, { waitS: 1 })).status, "succeeded");
  assert.equal((await client.getTask("t1", { waitS: 1 })).state, "succeeded");
  await assert.rejects(
    client.getTask("t1"),
    { code: "NETWORK_ERROR" },
    "a plain get keeps the short timeout",
  );
});

test("an error answer becomes a KilnApiError with the server's code", async () => {
  const { fetch } = createFakeFetch(() => ({
    status: 404,
    body: { error: { code: "TASK_NOT_FOUND", message: "no task 'x'", details: null } },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.getTask("x"), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "TASK_NOT_FOUND");
    assert.equal(error.status, 404);
    return true;
  });
});

test("a server that cannot be reached gives NETWORK_ERROR", async () => {
  const fetch: typeof globalThis.fetch = () =>
    Promise.reject(new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:9") }));
  const client = createClient({ url: "http://127.0.0.1:9", fetch });
  await assert.rejects(client.health(), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "NETWORK_ERROR");
    assert.equal(error.status, 0);
    assert.match(error.message, /ECONNREFUSED/);
    return true;
  });
});
