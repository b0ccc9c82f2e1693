/** A function's `maxConcurrency`, measured from inside its tasks. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { TaskInput } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

interface Interval {
  startMs: number;
  endMs: number;
}

/** The most intervals that overlap at any instant (one ending exactly when another starts does not overlap). */
function computeMaxOverlap(intervals: readonly Interval[]): number {
  const events = intervals.flatMap(({ startMs, endMs }) => [
    { atMs: startMs, delta: 1 },
    { atMs: endMs, delta: -1 },
  ]);
  events.sort((a, b) => a.atMs - b.atMs || a.delta - b.delta);
  let current = 0;
  let max = 0;
  for (const event of events) {
    current += event.delta;
    max = Math.max(max, current);
  }
  return max;
}

test(
  "a function with maxConcurrency 3 never runs more than 3 tasks at once",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const intervalDir = await mkdtemp(path.join(tmpdir(), "kiln-e2e-intervals-"));
    t.after(() => rm(intervalDir, { recursive: true, force: true }));
    const { client } = server;
    const deployed = await deployTestFunction(client, "record-interval");
    assert.equal(deployed.function.maxConcurrency, 3);
    await client.updateFunction("record-interval", { env: { INTERVAL_DIR: intervalDir } });

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

    const files = await readdir(intervalDir);
    assert.equal(files.length, 30);
    const intervals = await Promise.all(
      files.map(async (file) => JSON.parse(await readFile(path.join(intervalDir, file), "utf8")) as Interval),
    );
    const maxOverlap = computeMaxOverlap(intervals);
    t.diagnostic(`at most ${maxOverlap} tasks overlapped`);
    assert.ok(maxOverlap <= 3, `${maxOverlap} tasks ran at once, over maxConcurrency 3`);
    assert.ok(maxOverlap >= 2, `tasks never overlapped (max ${maxOverlap}): the limit was not exercised`);
  },
);
