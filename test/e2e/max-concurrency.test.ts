/** A function's `maxConcurrency`, measured from inside its tasks (each returns when it ran). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskInput } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";
import { computeMaxOverlap, type Interval } from "./max-overlap.js";

test(
  "a function with maxConcurrency 3 never runs more than 3 tasks at once",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    const deployed = await deployTestFunction(client, "record-interval");
    assert.equal(deployed.function.maxConcurrency, 3);

    const inputs: TaskInput[] = Array.from({ length: 30 }, () => ({
      function: "record-interval",
      payload: { sleepMs: 50 },
    }));
    await client.createTasks(inputs);
    await waitUntilNoneUnfinished(client, "record-interval", 60_000);
    const tasks = await listAllTasks(client, { function: "record-interval" });
    assert.deepEqual(
      tasks.map((task) => task.state),
      Array.from({ length: 30 }, () => "succeeded"),
    );

    const intervals = tasks.map((task): Interval => {
      const interval = task.result as Partial<Interval> | null;
      assert.ok(
        typeof interval?.startMs === "number" &&
          typeof interval.endMs === "number" &&
          interval.startMs <= interval.endMs,
        `task ${task.id} returned no interval: ${JSON.stringify(task.result)}`,
      );
      return { startMs: interval.startMs, endMs: interval.endMs };
    });
    const maxOverlap = computeMaxOverlap(intervals);
    t.diagnostic(`at most ${maxOverlap} tasks overlapped`);
    assert.ok(maxOverlap <= 3, `${maxOverlap} tasks ran at once, over maxConcurrency 3`);
    assert.ok(maxOverlap >= 2, `tasks never overlapped (max ${maxOverlap}): the limit was not exercised`);
  },
);
