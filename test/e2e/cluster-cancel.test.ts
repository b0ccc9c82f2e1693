/**
 * Cancelling through one node a task that runs on another: node A runs no tasks (`--max-workers 0`), so
 * the running attempt is on node B, and only the cancel notification can stop it there.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { readNodeId, startCluster, waitForAliveNodes } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { pollUntil } from "./poll-until.js";

test(
  "a task running on one node is cancelled through another within seconds",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await startCluster(t, [{ maxWorkers: 0 }, {}]);
    if (cluster === null) return;
    const [front, worker] = cluster.nodes;
    assert.ok(front !== undefined && worker !== undefined);
    await waitForAliveNodes(front, await Promise.all(cluster.nodes.map(readNodeId)), 10_000);
    await deployTestFunction(front.client, "record-interval-on-node");
    const [task] = await front.client.createTasks([
      { function: "record-interval-on-node", payload: { sleepMs: 25_000, reportStart: true } },
    ]);
    assert.ok(task !== undefined);
    await pollUntil(
      "the task to run on the worker node",
      async () => ((await front.client.getTask(task.id)).progress !== null ? true : undefined),
      { timeoutMs: 30_000 },
    );

    const startedMs = Date.now();
    const cancelled = await front.client.cancelTask(task.id);
    const elapsedMs = Date.now() - startedMs;
    t.diagnostic(`cancel through the front node answered ${cancelled.state} in ${elapsedMs} ms`);
    assert.equal(cancelled.state, "cancelled");
    assert.ok(elapsedMs < 10_000, `the cancel took ${elapsedMs} ms`);
    assert.equal((await worker.client.getTask(task.id)).state, "cancelled");
  },
);

test(
  "a task claimed ahead on one node and not started yet is cancelled through another at once",
  { timeout: 120_000 },
  async (t) => {
    // B runs one sandbox: a second task waits in its local queue, `running` in the store, not started.
    const cluster = await startCluster(t, [{ maxWorkers: 0 }, { maxWorkers: 1 }]);
    if (cluster === null) return;
    const [front] = cluster.nodes;
    assert.ok(front !== undefined);
    await waitForAliveNodes(front, await Promise.all(cluster.nodes.map(readNodeId)), 10_000);
    await deployTestFunction(front.client, "record-interval-on-node");
    // Without a limit: a limited function's lane claims ahead only what its node can start at once.
    await front.client.updateFunction("record-interval-on-node", { maxConcurrency: 0 });
    const [busy] = await front.client.createTasks([
      { function: "record-interval-on-node", payload: { sleepMs: 20_000, reportStart: true } },
    ]);
    assert.ok(busy !== undefined);
    await pollUntil(
      "the first task to start on the worker node",
      async () => ((await front.client.getTask(busy.id)).progress !== null ? true : undefined),
      { timeoutMs: 30_000 },
    );
    const [held] = await front.client.createTasks([
      { function: "record-interval-on-node", payload: { sleepMs: 1, reportStart: true } },
    ]);
    assert.ok(held !== undefined);
    await pollUntil(
      "the second task to be claimed ahead",
      async () => ((await front.client.getTask(held.id)).state === "running" ? true : undefined),
      { timeoutMs: 3_000, intervalMs: 20 },
    );

    const startedMs = Date.now();
    const cancelled = await front.client.cancelTask(held.id);
    const elapsedMs = Date.now() - startedMs;
    t.diagnostic(`cancel of the task claimed ahead answered ${cancelled.state} in ${elapsedMs} ms`);
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.progress, null, "the cancelled task never started");
    assert.ok(elapsedMs < 3_000, `the cancel took ${elapsedMs} ms`);
    await front.client.cancelTask(busy.id);
  },
);
