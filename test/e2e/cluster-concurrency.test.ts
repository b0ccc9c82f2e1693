/**
 * A function's `maxConcurrency` holds across nodes: three nodes claim from one PostgreSQL queue, and the
 * tasks themselves say when they ran and on which node (process isolation, where a sandbox's parent is its
 * node).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskInput } from "../../src/client/index.js";
import { describeNodeLogs, pickNode, readNodeId, startCluster, waitForAliveNodes } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";
import { computeMaxOverlap, type Interval } from "./max-overlap.js";

const functionName = "record-interval-on-node";
const maxConcurrency = 5;
const taskCount = 600;
const batchSize = 50;

test(
  "a function with maxConcurrency 5, fed through three nodes, never has more than 5 tasks running at once",
  { timeout: 180_000 },
  async (t) => {
    const cluster = await startCluster(
      t,
      // Two sandboxes a node: five at once needs all three nodes, so the limit must hold across them
      // (with more, the node whose tasks end first takes the freed slots, and the others rarely any).
      Array.from({ length: 3 }, () => ({ args: ["--isolation", "process"], maxWorkers: 2 })),
    );
    if (cluster === null) return;
    const { nodes } = cluster;
    const [first] = nodes;
    assert.ok(first !== undefined);
    const deployed = await deployTestFunction(first.client, functionName);
    assert.equal(deployed.function.maxConcurrency, maxConcurrency);
    await waitForAliveNodes(first, await Promise.all(nodes.map(readNodeId)), 10_000);

    // Short tasks make claims frequent, and batches arriving at all three nodes at once make the nodes
    // race for the same free slot.
    const batches = Array.from({ length: taskCount / batchSize }, () =>
      Array.from({ length: batchSize }, (): TaskInput => ({
        function: functionName,
        payload: { sleepMs: 20 },
      })),
    );
    await Promise.all(batches.map((inputs, b) => pickNode(nodes, b).client.createTasks(inputs)));
    try {
      await waitUntilNoneUnfinished(first.client, functionName, 150_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${describeNodeLogs(nodes)}`, { cause: error });
    }

    const tasks = await listAllTasks(first.client, { function: functionName });
    assert.equal(tasks.length, taskCount);
    assert.deepEqual(
      tasks.filter((task) => task.state !== "succeeded").map((task) => `${task.id} ${task.state}`),
      [],
    );
    const runs = tasks.map((task) => {
      const run = task.result as Partial<Interval & { nodePid: number }> | null;
      assert.ok(
        typeof run?.startMs === "number" &&
          typeof run.endMs === "number" &&
          typeof run.nodePid === "number" &&
          run.startMs <= run.endMs,
        `task ${task.id} returned no interval: ${JSON.stringify(task.result)}`,
      );
      return { startMs: run.startMs, endMs: run.endMs, nodePid: run.nodePid };
    });
    const maxOverlap = computeMaxOverlap(runs);
    const tasksPerNode = nodes.map((node) => runs.filter((run) => run.nodePid === node.pid).length);
    t.diagnostic(`at most ${maxOverlap} tasks overlapped; tasks per node: ${tasksPerNode.join(", ")}`);
    assert.ok(maxOverlap <= maxConcurrency, `${maxOverlap} tasks ran at once, over maxConcurrency 5`);
    assert.equal(maxOverlap, maxConcurrency, "the limit was never reached: it was not exercised");
    assert.equal(
      tasksPerNode.reduce((sum, count) => sum + count, 0),
      taskCount,
      "some tasks ran on a process that is none of the nodes",
    );
    assert.ok(
      tasksPerNode.every((count) => count > 0),
      `a node ran none of the tasks (${tasksPerNode.join(", ")}): the limit was not shared by all three`,
    );
  },
);
