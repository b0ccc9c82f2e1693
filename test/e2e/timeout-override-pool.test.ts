/**
 * A `timeoutS` override cannot take a task of a short-pool function past the long-task threshold: it
 * would hold a short-pool sandbox as long as a long task, outside the long pool's share of memory.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnApiError } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks } from "./task-listing.js";

test(
  "a timeoutS override above 300 s for a function of the short pool is refused with 400, naming the field and the limit",
  { timeout: 60_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "echo"); // its own timeoutS is 10

    for (const attempt of [
      () => client.createTask({ function: "echo", payload: 1, timeoutS: 301 }),
      () => client.invoke("echo", 1, { timeoutS: 900 }),
    ]) {
      const refused = await attempt().then(
        () => null,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof KilnApiError, `expected a refusal, got ${String(refused)}`);
      assert.equal(refused.status, 400);
      assert.equal(refused.code, "BAD_REQUEST");
      assert.match(refused.message, /^timeoutS \d+ is more than 300, the longest a task of 'echo' may run/);
    }
    assert.deepEqual(await listAllTasks(client, { function: "echo" }), [], "a refused task was created");

    const atThreshold = await client.createTask({ function: "echo", payload: 2, timeoutS: 300 });
    assert.equal((await client.waitForTask(atThreshold.id, { timeoutS: 30 })).state, "succeeded");
  },
);
