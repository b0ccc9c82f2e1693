/** Cancelling tasks through the API: a running one (its sandbox must go) and a delayed one. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer, type KilnServer } from "./kiln-server.js";
import { describeSandbox, waitForSandboxGone, waitForSandboxIdentity } from "./sandbox-process.js";

/** Every hook and test of the suite is bounded on its own. */
const step = { timeout: 60_000 };

describe("cancel", { timeout: 120_000 }, () => {
  let server: KilnServer;
  before(async () => {
    server = await startKilnServer();
    await deployTestFunction(server.client, "pid-then-sleep");
  }, step);
  after(() => server?.stop(), step);

  test(
    "a running task that is cancelled ends cancelled within seconds and its sandbox process is gone",
    step,
    async (t) => {
      const { client } = server;
      const task = await client.createTask({ function: "pid-then-sleep", payload: { sleepMs: 30_000 } });
      const sandbox = await waitForSandboxIdentity(client, task.id, 30_000);
      assert.equal((await client.getTask(task.id)).state, "running");

      const cancelStartedMs = Date.now();
      const answer = await client.cancelTask(task.id);
      const cancelMs = Date.now() - cancelStartedMs;
      t.diagnostic(`the cancel request took ${cancelMs} ms`);
      assert.equal(answer.state, "cancelled");
      assert.ok(cancelMs < 3_000, `cancelling took ${cancelMs} ms`);

      const stored = await client.getTask(task.id);
      assert.equal(stored.state, "cancelled");
      assert.equal(stored.attempts.length, 1);
      assert.equal(stored.attempts[0]?.outcome, "cancelled");
      assert.notEqual(stored.finishedAt, null);
      const goneAfterMs = await waitForSandboxGone(sandbox, 2_000);
      t.diagnostic(`sandbox ${describeSandbox(sandbox)} gone ${goneAfterMs} ms after the task ended`);
    },
  );

  test("a delayed task that is cancelled ends cancelled without running", step, async () => {
    const { client } = server;
    const task = await client.createTask({ function: "pid-then-sleep", payload: { sleepMs: 1 }, delayS: 60 });
    assert.equal(task.state, "delayed");

    const answer = await client.cancelTask(task.id);
    assert.equal(answer.state, "cancelled");
    const stored = await client.getTask(task.id);
    assert.equal(stored.state, "cancelled");
    assert.deepEqual(stored.attempts, []);
    assert.equal(stored.startedAt, null);
  });
});
