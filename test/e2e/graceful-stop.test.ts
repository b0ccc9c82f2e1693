/**
 * A graceful stop (SIGTERM, Ctrl-C): running tasks finish within the grace, the rest are handed back
 * (queued again, not `lost`), and a second signal stops at once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KilnClient } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer, type KilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";

/**
 * A task that has really started in its sandbox (it reports progress first): a task the store shows
 * `running` may still wait in its lane's local queue, claimed ahead, and a stop hands those back.
 */
async function startSleepingTask(client: KilnClient, sleepMs: number): Promise<string> {
  await deployTestFunction(client, "pid-then-sleep");
  const task = await client.createTask({ function: "pid-then-sleep", payload: { sleepMs } });
  await pollUntil(
    "the task to start",
    async () => ((await client.getTask(task.id)).progress !== null ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 20 },
  );
  return task.id;
}

async function startServer(t: { after(fn: () => Promise<void>): void }, graceS: number): Promise<KilnServer> {
  const server = await startKilnServer({ env: { KILN_SHUTDOWN_GRACE_S: String(graceS) } });
  t.after(() => server.stop());
  return server;
}

test(
  "SIGTERM during a 3 s task: the node says what it waits for, still accepts tasks, and exits once the task has succeeded",
  { timeout: 120_000 },
  async (t) => {
    const server = await startServer(t, 30);
    const taskId = await startSleepingTask(server.client, 3000);
    const signalledAt = Date.now();
    server.signal("SIGTERM");
    await pollUntil(
      "the node to say what it waits for",
      () => (server.log.includes("waiting for 1 running task, up to 30 s") ? true : undefined),
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    // Accepted while the node drains: durable, and run by the next start.
    const late = await server.client.createTask({ function: "pid-then-sleep", payload: { sleepMs: 0 } });
    assert.equal(late.state, "queued");

    await server.waitForExit(20_000);
    t.diagnostic(`exited ${Date.now() - signalledAt} ms after SIGTERM`);
    assert.doesNotMatch(server.log, /handed \d+ unfinished/);

    await server.restart();
    const done = await server.client.getTask(taskId);
    assert.equal(done.state, "succeeded");
    assert.deepEqual(
      done.attempts.map((attempt) => attempt.outcome),
      ["succeeded"],
    );
    const lateDone = await server.client.waitForTask(late.id, { timeoutS: 30 });
    assert.equal(lateDone.state, "succeeded");
  },
);

test(
  "a task longer than the grace is handed back when it runs out: queued again with no lost attempt, and it succeeds after the restart",
  { timeout: 120_000 },
  async (t) => {
    const server = await startServer(t, 1);
    const taskId = await startSleepingTask(server.client, 4000);
    const signalledAt = Date.now();
    server.signal("SIGTERM");
    await server.waitForExit(10_000);
    const stopMs = Date.now() - signalledAt;
    t.diagnostic(`exited ${stopMs} ms after SIGTERM`);
    assert.ok(stopMs < 3500, `the node waited ${stopMs} ms, past its 1 s grace, for a 4 s task`);
    assert.match(server.log, /handed 1 unfinished task back to the queue/);

    await server.restart();
    const done = await server.client.waitForTask(taskId, { timeoutS: 30 });
    assert.equal(done.state, "succeeded");
    assert.deepEqual(
      done.attempts.map((attempt) => [attempt.number, attempt.outcome]),
      [[1, "succeeded"]],
    );
  },
);

test(
  "a second SIGTERM stops at once: the running task is handed back, not lost",
  { timeout: 120_000 },
  async (t) => {
    const server = await startServer(t, 60);
    const taskId = await startSleepingTask(server.client, 30_000);
    server.signal("SIGTERM");
    await pollUntil(
      "the node to say what it waits for",
      () => (server.log.includes("press Ctrl-C again to stop now") ? true : undefined),
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    const secondAt = Date.now();
    server.signal("SIGTERM");
    await server.waitForExit(10_000);
    t.diagnostic(`exited ${Date.now() - secondAt} ms after the second SIGTERM`);
    assert.match(server.log, /handed 1 unfinished task back to the queue/);

    await server.restart();
    const task = await server.client.getTask(taskId);
    assert.ok(task.state === "queued" || task.state === "running", `the task is ${task.state}`);
    assert.equal(
      task.attempts.some((attempt) => attempt.outcome === "lost"),
      false,
      "the handed-back attempt was recorded as lost",
    );
  },
);
