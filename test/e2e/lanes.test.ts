/**
 * Lanes that claim ahead: latency classes between functions sharing a node, a task's deadline counted
 * from its real start (not from its claim), and tasks claimed ahead recovered after a `kill -9`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Task } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

test(
  "a sync invoke of function B answers within its budget while function A's background backlog holds every sandbox of the node",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer({ maxWorkers: 2 });
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "sleep-briefly");
    await deployTestFunction(client, "echo");
    // A's backlog: 200 background tasks of 100 ms, more than its two sandboxes run in 10 s.
    await client.createTasks(
      Array.from({ length: 200 }, (_, n) => ({
        function: "sleep-briefly",
        payload: { n, sleepMs: 100 },
        priority: 1 as const,
      })),
    );
    await pollUntil(
      "A's tasks to hold both sandboxes",
      async () => {
        const running = await client.listTasks({ function: "sleep-briefly", state: "running", limit: 10 });
        return running.tasks.length >= 2 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    const latencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const startedMs = performance.now();
      const invoked = await fetch(`${server.url}/v1/projects/default/functions/echo/invoke?wait=10`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
        body: JSON.stringify({ i }),
      });
      latencies.push(performance.now() - startedMs);
      assert.equal(invoked.status, 200, `invoke ${i}: ${await invoked.text()}`);
    }
    t.diagnostic(
      `invoke round trips while A's backlog runs: ${latencies.map((ms) => ms.toFixed(0)).join(", ")} ms`,
    );
    // The admission budget (250 ms, 2 s more while B's sandbox starts) bounds the wait for a sandbox.
    assert.ok((latencies[0] ?? Infinity) < 2_500, "the first invoke waited longer than its admission budget");
    const backlog = await client.listTasks({ function: "sleep-briefly", state: "queued", limit: 1 });
    assert.ok(backlog.tasks.length > 0, "A's backlog was gone before B's invokes: the test proved nothing");
  },
);

test(
  "a task that waited in its lane's local queue behind others still gets its whole timeout",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer({ maxWorkers: 1 });
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "sleep-briefly");
    // One sandbox, tasks of 700 ms with a 1 s timeout: the second is claimed while the first runs and
    // starts ~700 ms after its claim; counted from the claim, its deadline would fall mid-run.
    const tasks = await client.createTasks(
      Array.from({ length: 4 }, (_, n) => ({
        function: "sleep-briefly",
        payload: { n, sleepMs: 700 },
        timeoutS: 1,
      })),
    );
    const done = await Promise.all(tasks.map((task) => client.waitForTask(task.id, { timeoutS: 30 })));
    t.diagnostic(`states: ${done.map((task) => task.state).join(" ")}`);
    assert.deepEqual(
      done.map((task) => task.state),
      ["succeeded", "succeeded", "succeeded", "succeeded"],
    );
    // They ran one after another: the last started ~2 s after it was created, twice its timeout.
    const last = done.at(-1) as Task;
    const attempt = last.attempts.at(-1);
    assert.ok(attempt !== undefined);
    const waitedMs = Date.parse(attempt.startedAt) - Date.parse(last.createdAt);
    t.diagnostic(`the last task's attempt started ${waitedMs} ms after it was created`);
    assert.ok(waitedMs >= 1_500, "the tasks did not wait for each other: the test proved nothing");
  },
);

test(
  "tasks claimed ahead by a node killed with kill -9 are recovered like running ones: none lost, the lost attempt not charged",
  { timeout: 180_000 },
  async (t) => {
    const server = await startKilnServer({ maxWorkers: 2 });
    t.after(() => server.stop());
    await deployTestFunction(server.client, "sleep-briefly");
    // No retries: a charged lost attempt would end its task failed.
    await server.client.updateFunction("sleep-briefly", { retries: 0 });
    const created = await server.client.createTasks(
      Array.from({ length: 40 }, (_, n) => ({ function: "sleep-briefly", payload: { n, sleepMs: 300 } })),
    );
    // More tasks `running` in the store than sandboxes: some are claimed ahead, waiting in the lane.
    const running = await pollUntil(
      "tasks claimed ahead of the two sandboxes",
      async () => {
        const page = await server.client.listTasks({
          function: "sleep-briefly",
          state: "running",
          limit: 50,
        });
        return page.tasks.length > 2 ? page.tasks.length : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    t.diagnostic(`killed with ${running} tasks running or claimed ahead on 2 sandboxes`);
    await server.kill9();
    await server.restart();
    const { client } = server;
    await waitUntilNoneUnfinished(client, "sleep-briefly", 120_000);
    const tasks = await listAllTasks(client, { function: "sleep-briefly" });
    assert.deepEqual(new Set(tasks.map((task) => task.id)), new Set(created.map((task) => task.id)));
    assert.deepEqual(
      tasks.filter((task) => task.state !== "succeeded").map((task) => `${task.id} ${task.state}`),
      [],
    );
    const lost = tasks.filter((task) => task.attempts.some((attempt) => attempt.outcome === "lost"));
    t.diagnostic(`${lost.length} tasks have a lost attempt`);
    assert.ok(lost.length > 0, "no task was running or claimed at the kill: the test proved nothing");
  },
);
