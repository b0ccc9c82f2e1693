/**
 * A graceful stop on PostgreSQL: the task the stopping node could not finish within its grace is handed
 * back and announced, so another node runs it at once — not after a lease, and not as a `lost` attempt.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startCluster } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";

test(
  "a node stopped gracefully hands its unfinished task back and another node runs it at once, with no lost attempt",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await startCluster(t, [{ env: { KILN_SHUTDOWN_GRACE_S: "1" } }]);
    if (cluster === null) return;
    const [stopping] = cluster.nodes;
    assert.ok(stopping !== undefined);
    await deployTestFunction(stopping.client, "record-interval-on-node");
    const task = await stopping.client.createTask({
      function: "record-interval-on-node",
      payload: { sleepMs: 4000, reportStart: true },
    });
    await pollUntil(
      "the task to run on the first node",
      async () => ((await stopping.client.getTask(task.id)).progress !== null ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    // Started only now, so the task can only have run on the first node so far.
    const other = await startKilnServer({
      args: ["--database", cluster.databaseUrl],
      env: { KILN_DATABASE_SCHEMA: cluster.schema },
    });
    t.after(() => other.stop());

    stopping.signal("SIGTERM");
    await stopping.waitForExit(10_000);
    const exitedMs = Date.now();
    assert.match(stopping.log, /handed 1 unfinished task back to the queue/);

    const done = await other.client.waitForTask(task.id, { timeoutS: 30 });
    assert.equal(done.state, "succeeded");
    assert.deepEqual(
      done.attempts.map((attempt) => [attempt.number, attempt.outcome]),
      [[1, "succeeded"]],
    );
    const { startMs } = done.result as { startMs: number };
    const pickedUpMs = startMs - exitedMs;
    t.diagnostic(`the other node started the task ${Math.round(pickedUpMs)} ms after the first exited`);
    // A lease (5 s) would have had to expire first without the hand-back's announcement.
    assert.ok(pickedUpMs < 3000, `the task waited ${Math.round(pickedUpMs)} ms for another node`);
  },
);
