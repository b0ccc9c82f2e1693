/** Retries after failed attempts: the backoff between them, and errors that forbid a retry. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer, type KilnServer } from "./kiln-server.js";

/** Every hook and test of the suite is bounded on its own. */
const step = { timeout: 60_000 };

describe("retries", { timeout: 120_000 }, () => {
  let server: KilnServer;
  before(async () => {
    server = await startKilnServer();
  }, step);
  after(() => server?.stop(), step);

  test(
    "a task failing twice with retries 2 and a fixed 200 ms backoff succeeds on its third attempt, 200 ms after each failure",
    step,
    async () => {
      const { client } = server;
      const deployed = await deployTestFunction(client, "fail-twice");
      assert.equal(deployed.function.retries, 2);
      assert.deepEqual(deployed.function.backoff, { type: "fixed", delayMs: 200, maxDelayMs: 200 });

      const task = await client.createTask({ function: "fail-twice" });
      const done = await client.waitForTask(task.id, { timeoutS: 60 });

      assert.equal(done.state, "succeeded");
      assert.deepEqual(done.result, { succeededOnAttempt: 3 });
      assert.deepEqual(
        done.attempts.map((attempt) => [attempt.number, attempt.outcome]),
        [
          [1, "handler_error"],
          [2, "handler_error"],
          [3, "succeeded"],
        ],
      );
      assert.match(done.attempts[0]?.failure?.message ?? "", /attempt 1 fails on purpose/);
      for (let index = 1; index < done.attempts.length; index += 1) {
        const previous = done.attempts[index - 1];
        const next = done.attempts[index];
        assert.ok(previous !== undefined && next !== undefined);
        const gapMs = Date.parse(next.startedAt) - Date.parse(previous.finishedAt);
        const gap = `attempt ${next.number} started ${gapMs} ms after attempt ${previous.number} failed`;
        assert.ok(gapMs >= 200, `${gap}: sooner than the backoff`);
        assert.ok(gapMs < 1_000, `${gap}: a fixed 200 ms backoff does not take that long`);
      }
    },
  );

  test(
    "an error marked retryable = false fails the task after one attempt, with retries left",
    step,
    async () => {
      const { client } = server;
      const deployed = await deployTestFunction(client, "fail-permanently");
      assert.equal(deployed.function.retries, 3);

      const task = await client.createTask({ function: "fail-permanently" });
      const done = await client.waitForTask(task.id, { timeoutS: 60 });

      assert.equal(done.state, "failed");
      assert.equal(done.attempts.length, 1);
      assert.equal(done.attempts[0]?.outcome, "handler_error");
      assert.equal(done.failure?.kind, "handler_error");
      assert.equal(done.failure?.retryable, false);
      assert.match(done.failure?.message ?? "", /this input can never work/);
    },
  );
});
