/** Latency classes: sync ahead of background ahead of batch, and no class starves. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

test(
  "higher classes start first, yet the oldest batch tasks keep starting under a stream of background work",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "sleep-briefly");
    // One task at a time, all queued before the first starts: the order of starts is the dispatcher's alone.
    await client.updateFunction("sleep-briefly", { maxConcurrency: 1, paused: true });
    await client.createTasks(
      Array.from({ length: 20 }, (_, n) => ({
        function: "sleep-briefly",
        payload: { n, sleepMs: 10 },
        priority: 0 as const,
        label: "batch",
      })),
    );
    await client.createTasks(
      Array.from({ length: 20 }, (_, n) => ({
        function: "sleep-briefly",
        payload: { n, sleepMs: 10 },
        priority: 2 as const,
        label: "background",
      })),
    );
    await client.updateFunction("sleep-briefly", { paused: false });
    const invoked = await fetch(`${server.url}/v1/projects/default/functions/sleep-briefly/invoke?wait=30`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
      body: JSON.stringify({ n: -1, sleepMs: 10 }),
    });
    assert.equal(invoked.status, 200);
    await waitUntilNoneUnfinished(client, "sleep-briefly", 60_000);
    const tasks = (await listAllTasks(client, { function: "sleep-briefly" })).sort(
      (a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!) || a.id.localeCompare(b.id),
    );
    const firstTwenty = tasks.slice(0, 20).map((task) => task.label ?? "sync");
    t.diagnostic(`start order: ${firstTwenty.join(" ")}`);
    const count = (label: string) => firstTwenty.filter((value) => value === label).length;
    assert.ok(count("background") >= 12, "background (priority 2) goes ahead of batch (priority 0)");
    assert.ok(count("batch") >= 3, "but one start in five goes to the oldest task: batch does not starve");
    assert.ok(tasks.findIndex((task) => task.label === null) < 10, "the sync invocation jumped the queue");
  },
);
