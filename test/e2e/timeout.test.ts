/** A task that runs past its timeout, and the sandbox it ran in. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { describeSandbox, waitForSandboxGone, waitForSandboxIdentity } from "./sandbox-process.js";

test(
  "a task sleeping past its 1 s timeout ends timed_out within 100 ms of the deadline and its sandbox is killed",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    await deployTestFunction(client, "pid-then-sleep");

    const task = await client.createTask({
      function: "pid-then-sleep",
      payload: { sleepMs: 10_000 },
      timeoutS: 1,
    });
    assert.equal(task.timeoutS, 1);
    const sandbox = await waitForSandboxIdentity(client, task.id, 30_000);
    const done = await client.waitForTask(task.id, { timeoutS: 30 });

    assert.equal(done.state, "timed_out");
    assert.equal(done.attempts.length, 1);
    assert.equal(done.attempts[0]?.outcome, "timeout");
    assert.equal(done.failure?.kind, "timeout");
    // The deadline counts from the attempt's real start (its sandbox got the task), which comes after
    // the task's `startedAt` (its claim) when it waited in its lane's local queue for a cold start.
    const attemptStartedAt = done.attempts[0]?.startedAt;
    assert.ok(attemptStartedAt !== undefined && done.finishedAt !== null);
    const lateMs = Date.parse(done.finishedAt) - (Date.parse(attemptStartedAt) + 1000);
    t.diagnostic(`finished ${lateMs} ms after the deadline`);
    assert.ok(lateMs >= 0, `the task ended ${-lateMs} ms before its timeout`);
    assert.ok(lateMs <= 100, `the task ended ${lateMs} ms after its deadline (more than 100 ms)`);

    const goneAfterMs = await waitForSandboxGone(sandbox, 2_000);
    t.diagnostic(`sandbox ${describeSandbox(sandbox)} gone ${goneAfterMs} ms after the task ended`);
  },
);
