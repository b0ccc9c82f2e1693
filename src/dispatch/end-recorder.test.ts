import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { defaultSettings } from "../domain/function-settings.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Lane } from "../domain/lane.js";
import type { AttemptEnd, ClaimedTask, Store } from "../store/store.js";
import { EndRecorder } from "./end-recorder.js";

const project = "default";
const lane: Lane = { project, functionName: "one-at-a-time", revision: "b".repeat(64) };
const now = new Date("2026-01-01T00:00:00Z");

/** A SQLite store with a function allowed one running task, and two queued tasks of it. */
async function storeWithTwoTasks(): Promise<{ store: SqliteStore; ids: string[] }> {
  const store = new SqliteStore({ path: ":memory:", maxLogChars: 1000 });
  await store.ensureProject(project, now);
  await store.deployRevision({
    project,
    name: lane.functionName,
    digest: lane.revision,
    spec: { runtime: "node", entry: ["index.js"] },
    archive: new Uint8Array([1]),
    settings: { ...defaultSettings, maxConcurrency: 1 },
    now,
  });
  const ids = [randomUUID(), randomUUID()];
  await store.enqueueTasks(
    ids.map((id) => ({
      id,
      ...lane,
      priority: 0,
      payload: "{}",
      label: null,
      idempotencyKey: null,
      timeoutS: 60,
      createdAt: now,
      runAt: now,
      callbackUrl: null,
    })),
  );
  return { store, ids };
}

function succeeded(task: ClaimedTask): AttemptEnd {
  return {
    taskId: task.id,
    attempt: task.attempt,
    startedAt: now,
    finishedAt: now,
    outcome: "succeeded",
    failure: null,
    result: '"ok"',
    log: "",
    next: { state: "succeeded" },
  };
}

/** The store, but `finishAttempts` throws a plain error (not "unavailable") whenever `refuse` says so. */
function refusingEnds(store: Store, refuse: (ends: AttemptEnd[]) => boolean): Pick<Store, "finishAttempts"> {
  return {
    finishAttempts: (ends) =>
      refuse(ends) ? Promise.reject(new Error("disk I/O error")) : store.finishAttempts(ends),
  };
}

test("an end the store refuses once is recorded on a retry, and the function's one slot frees", async () => {
  const { store, ids } = await storeWithTwoTasks();
  let refusals = 0;
  const recorder = new EndRecorder(refusingEnds(store, () => refusals++ === 0));
  const [first] = await store.claimTasks(lane, 1, now, { maxConcurrency: 1 });
  assert.ok(first !== undefined);
  assert.deepEqual(await store.claimTasks(lane, 1, now, { maxConcurrency: 1 }), []);

  await recorder.record(succeeded(first));

  assert.equal(refusals, 2);
  assert.equal((await store.getTask(project, first.id))?.state, "succeeded");
  const [second] = await store.claimTasks(lane, 1, now, { maxConcurrency: 1 });
  assert.equal(second?.id, ids[1]);
  await store.close();
});

test("an end the store always refuses ends the task failed as crashed, with the reason, and frees its slot", async () => {
  const { store, ids } = await storeWithTwoTasks();
  const recorder = new EndRecorder(refusingEnds(store, (ends) => ends.some((end) => end.result !== null)));
  const [first] = await store.claimTasks(lane, 1, now, { maxConcurrency: 1 });
  assert.ok(first !== undefined);

  await recorder.record(succeeded(first));

  const task = await store.getTask(project, first.id);
  assert.equal(task?.state, "failed");
  assert.equal(task?.failure?.kind, "crashed");
  assert.match(
    task?.failure?.message ?? "",
    /outcome of this attempt \(succeeded\) could not be recorded: disk I\/O error/,
  );
  const [second] = await store.claimTasks(lane, 1, now, { maxConcurrency: 1 });
  assert.equal(second?.id, ids[1]);
  await store.close();
});
