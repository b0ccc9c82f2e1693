/**
 * Fencing, end to end: a node frozen (SIGSTOP) past its lease has its running tasks recovered and run
 * again by another node; when it thaws, the outcomes its sandboxes produced meanwhile are refused, since
 * the newer attempts own the tasks now. Process isolation, so that results name the node that ran them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Task } from "../../src/client/index.js";
import { listClusterNodes, readNodeId, startCluster } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";

const leaseTtlMs = 1000;
const sleepMs = 3000;
const nodeOptions = { args: ["--isolation", "process"], env: { KILN_LEASE_TTL_MS: String(leaseTtlMs) } };

test(
  "a node frozen past its lease loses its running tasks to another node, and its late outcomes change nothing",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await startCluster(t, [nodeOptions]);
    if (cluster === null) return;
    const [frozen] = cluster.nodes;
    assert.ok(frozen !== undefined);
    await deployTestFunction(frozen.client, "record-interval-on-node");
    const created = await frozen.client.createTasks(
      Array.from({ length: 3 }, () => ({ function: "record-interval-on-node", payload: { sleepMs } })),
    );
    const ids = created.map((task) => task.id);
    const states = async (node: typeof frozen) =>
      Promise.all(ids.map(async (id) => (await node.client.getTask(id)).state));
    await pollUntil(
      "the first node to run all three",
      async () => ((await states(frozen)).every((state) => state === "running") ? true : undefined),
      { timeoutMs: 30_000 },
    );

    // Joins only now, so the three tasks are the frozen node's.
    const rescuer = await startKilnServer({
      ...nodeOptions,
      args: ["--database", cluster.databaseUrl, ...nodeOptions.args],
      env: { ...nodeOptions.env, KILN_DATABASE_SCHEMA: cluster.schema },
    });
    t.after(() => rescuer.stop());
    process.kill(frozen.pid, "SIGSTOP");
    let thawed = false;
    const thaw = () => {
      if (!thawed) process.kill(frozen.pid, "SIGCONT");
      thawed = true;
    };
    t.after(thaw);

    await pollUntil(
      "the rescuer to recover the frozen node's tasks",
      async () => {
        const tasks = await Promise.all(ids.map((id) => rescuer.client.getTask(id)));
        return tasks.every((task) => task.attempts.some((attempt) => attempt.outcome === "lost"))
          ? true
          : undefined;
      },
      { timeoutMs: 20_000 },
    );
    // The frozen node's sandboxes ran on: by now their 3 s are up and their outcomes wait in its pipes.
    thaw();

    const finished: Task[] = await pollUntil(
      "every task to succeed",
      async () => {
        const tasks = await Promise.all(ids.map((id) => rescuer.client.getTask(id)));
        return tasks.every((task) => task.state === "succeeded") ? tasks : undefined;
      },
      { timeoutMs: 30_000 },
    );
    for (const task of finished) {
      assert.deepEqual(
        task.attempts.map((attempt) => [attempt.number, attempt.outcome]),
        [
          [1, "lost"],
          [2, "succeeded"],
        ],
        `task ${task.id}`,
      );
      // Either node may have run attempt 2 (the thawed one too, once its sandboxes came free); what must
      // not be recorded is the outcome of attempt 1, which began before the freeze.
      const lostAtMs = Date.parse(task.attempts[0]!.finishedAt);
      const { startMs, nodePid } = task.result as { startMs: number; nodePid: number };
      assert.ok(startMs >= lostAtMs, `task ${task.id}: the result is from the run before the freeze`);
      assert.ok([frozen.pid, rescuer.pid].includes(nodePid));
    }
    assert.ok(frozen.running, "the thawed node is still running");
    const frozenId = await readNodeId(frozen);
    await pollUntil(
      "the thawed node to renew its lease",
      async () =>
        (await listClusterNodes(rescuer)).find((node) => node.id === frozenId)?.alive === true
          ? true
          : undefined,
      { timeoutMs: 10_000 },
    );
  },
);
