/**
 * A caller waiting on one node for a task another node runs: node A runs no tasks (`--max-workers 0`),
 * node B does, and both poll the database only every 10 s, so only notifications can explain a fast answer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Task } from "../../src/client/index.js";
import { describeNodeLogs, readNodeId, startCluster, waitForAliveNodes } from "./cluster-nodes.js";
import { deployTestFunction } from "./deploy-test-function.js";
import type { KilnServer } from "./kiln-server.js";

const pollIntervalMs = 10_000;
/** Well under the poll interval: an answer this fast was not found by polling. */
const promptMs = 3_000;
const rounds = 5;

async function post(server: KilnServer, route: string, body: unknown) {
  const startedMs = performance.now();
  const response = await fetch(`${server.url}/v1/projects/default${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { response, text: await response.text(), elapsedMs: performance.now() - startedMs };
}

async function getTaskWaiting(server: KilnServer, id: string, waitS: number) {
  const startedMs = performance.now();
  const response = await fetch(`${server.url}/v1/projects/default/tasks/${id}?wait=${waitS}`, {
    headers: { authorization: `Bearer ${server.token}` },
  });
  return { response, text: await response.text(), elapsedMs: performance.now() - startedMs };
}

test(
  "a task invoked through a node that runs no tasks runs on another node, and its result reaches the caller within well under the poll interval, by invoke and by long poll",
  { timeout: 180_000 },
  async (t) => {
    const env = { KILN_POLL_INTERVAL_MS: String(pollIntervalMs) };
    const cluster = await startCluster(t, [{ maxWorkers: 0, env }, { env }]);
    if (cluster === null) return;
    const { nodes } = cluster;
    const [front, worker] = nodes;
    assert.ok(front !== undefined && worker !== undefined);
    await waitForAliveNodes(front, await Promise.all(nodes.map(readNodeId)), 10_000);
    await deployTestFunction(front.client, "sleep-briefly");
    // A warm sandbox on B first, as a steady service would have: the test is about the way back, not B's
    // cold start.
    const warm = await post(worker, "/functions/sleep-briefly/invoke?wait=30", { n: -1, sleepMs: 1 });
    assert.equal(warm.response.status, 200, warm.text);

    const report = (what: string, error: unknown) =>
      new Error(`${what}: ${(error as Error).message}\n${describeNodeLogs(nodes)}`, { cause: error });
    for (let n = 0; n < rounds; n++) {
      const invoked = await post(front, "/functions/sleep-briefly/invoke?wait=30", { n, sleepMs: 50 });
      t.diagnostic(
        `invoke ${n} through A answered ${invoked.response.status} in ${Math.round(invoked.elapsedMs)} ms`,
      );
      try {
        assert.equal(invoked.response.status, 200, invoked.text);
        assert.deepEqual(JSON.parse(invoked.text), { n });
        assert.ok(
          invoked.elapsedMs < promptMs,
          `invoke ${n} answered after ${Math.round(invoked.elapsedMs)} ms`,
        );
      } catch (error) {
        throw report(`invoke ${n}`, error);
      }
    }

    for (let n = 0; n < rounds; n++) {
      const created = await post(front, "/tasks", {
        function: "sleep-briefly",
        payload: { n, sleepMs: 300 },
      });
      assert.equal(created.response.status, 201, created.text);
      const { id } = (JSON.parse(created.text) as { task: { id: string } }).task;
      const waited = await getTaskWaiting(front, id, 30);
      const answeredAt = new Date().toISOString();
      const elapsedMs = waited.elapsedMs + created.elapsedMs;
      const task = JSON.parse(waited.text) as Pick<
        Task,
        "state" | "result" | "createdAt" | "startedAt" | "finishedAt"
      >;
      // Which leg was slow, if one was: B's start (its wake-up) or A's answer (the result's way back).
      const timings = `created ${task.createdAt}, started ${task.startedAt}, finished ${task.finishedAt}, answered ${answeredAt}`;
      t.diagnostic(
        `task ${n}, created and long-polled through A, answered in ${Math.round(elapsedMs)} ms: ${timings}`,
      );
      try {
        assert.equal(waited.response.status, 200, waited.text);
        assert.equal(task.state, "succeeded");
        assert.deepEqual(task.result, { n });
        assert.ok(
          elapsedMs < promptMs,
          `the long poll of task ${n} answered after ${Math.round(elapsedMs)} ms (${timings})`,
        );
      } catch (error) {
        throw report(`long poll ${n}`, error);
      }
    }
  },
);
