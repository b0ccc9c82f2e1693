import assert from "node:assert/strict";
import { test } from "node:test";
import type { Task, TaskInput } from "./api-types.js";
import { createClient } from "./client.js";
import { KilnApiError } from "./kiln-api-error.js";

interface SeenRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
}

/** A fetch that records requests and answers each with `answer(request)` as JSON. */
function createFakeFetch(answer: (request: SeenRequest) => { status?: number; body: unknown }) {
  const seen: SeenRequest[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const request: SeenRequest = {
      method: init?.method ?? "GET",
      url: new URL(input instanceof Request ? input.url : input),
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? JSON.parse(init.body) : init?.body,
    };
    seen.push(request);
    const { status = 200, body } = answer(request);
    return Promise.resolve(new Response(JSON.stringify(body), { status }));
  };
  return { fetch, seen };
}

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

test("waitForTask asks the server to wait again until the task is final", async () => {
  const states: Task["state"][] = ["running", "succeeded"];
  const { fetch, seen } = createFakeFetch(() => ({ body: fakeTask("t1", states.shift() ?? "succeeded") }));
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "p", fetch });
  const task = await client.waitForTask("t1", { timeoutS: 120 });
  assert.equal(task.state, "succeeded");
  assert.equal(seen.length, 2);
  assert.equal(seen[0]?.url.pathname, "/v1/projects/p/tasks/t1/wait");
  assert.equal(seen[0]?.url.searchParams.get("timeoutS"), "60");
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
