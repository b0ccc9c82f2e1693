/** The largest batch one request takes, run to the end. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskInput } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

test(
  "10,000 tasks created in one request all succeed and every result can be read back",
  { timeout: 180_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "echo");

    const inputs: TaskInput[] = Array.from({ length: 10_000 }, (_, n) => ({
      function: "echo",
      payload: { n },
    }));
    let requests = 0;
    const created = await client.createTasks(inputs, { onProgress: () => (requests += 1) });
    assert.equal(requests, 1, "the SDK split the batch");
    assert.equal(created.length, 10_000);
    assert.equal(new Set(created.map((task) => task.id)).size, 10_000, "task ids are not unique");
    const expectedN = new Map(created.map((task, n) => [task.id, n]));

    await waitUntilNoneUnfinished(client, "echo", 150_000);

    const tasks = await listAllTasks(client, { function: "echo" });
    assert.equal(tasks.length, 10_000);
    for (const task of tasks) {
      const n = expectedN.get(task.id);
      assert.notEqual(n, undefined, `task ${task.id} was listed but never created`);
      expectedN.delete(task.id);
      assert.equal(task.state, "succeeded", `task ${task.id} (n=${n}) ended ${task.state}`);
      assert.deepEqual(task.result, { echo: { n } }, `task ${task.id} has the wrong result`);
    }
    assert.equal(expectedN.size, 0, `${expectedN.size} created tasks are missing from the listing`);
  },
);
