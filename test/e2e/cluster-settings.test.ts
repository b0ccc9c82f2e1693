/**
 * A function's settings changed through one node reach the others: node A runs no tasks, node B runs
 * them with the settings it has cached, and a pause made through A must stop B at once.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { readNodeId, startCluster, waitForAliveNodes } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { pollUntil } from "./poll-until.js";

test(
  "pausing a function through one node stops another node from starting its tasks",
  { timeout: 120_000 },
  async (t) => {
    // A poll interval longer than the test: only the announcement can tell B.
    const env = { KILN_POLL_INTERVAL_MS: "60000" };
    const cluster = await startCluster(t, [{ maxWorkers: 0, env }, { env }]);
    if (cluster === null) return;
    const [front, worker] = cluster.nodes;
    assert.ok(front !== undefined && worker !== undefined);
    await waitForAliveNodes(front, await Promise.all(cluster.nodes.map(readNodeId)), 10_000);
    await deployTestFunction(front.client, "sleep-briefly");
    // B runs one task, so it has the function's settings cached.
    assert.equal((await worker.client.invoke("sleep-briefly", { n: 0, sleepMs: 1 })).status, "succeeded");

    await front.client.updateFunction("sleep-briefly", { paused: true });
    const [task] = await worker.client.createTasks([
      { function: "sleep-briefly", payload: { n: 1, sleepMs: 1 } },
    ]);
    assert.ok(task !== undefined);
    await sleep(1500);
    assert.equal(
      (await worker.client.getTask(task.id)).state,
      "queued",
      "B started a task of a paused function",
    );

    await front.client.updateFunction("sleep-briefly", { paused: false });
    await pollUntil(
      "the task to run once the function is resumed",
      async () => ((await worker.client.getTask(task.id)).state === "succeeded" ? true : undefined),
      { timeoutMs: 10_000 },
    );
  },
);
