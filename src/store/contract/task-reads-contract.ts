/** The `TaskReads` part of the `Store` contract: task lists and logs. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "../store.js";
import { project, lane, at, storeWithFunction, newTask, end } from "./contract-fixtures.js";

export function runTaskReadsContract(makeStore: () => Promise<Store>): void {
  test("lists tasks newest first with filters and a cursor", async () => {
    const store = await storeWithFunction(makeStore);
    const created = await store.enqueueTasks(
      Array.from({ length: 5 }, (_, i) => newTask({ label: i % 2 === 0 ? "even" : "odd" })),
    );
    const first = await store.listTasks({ project, limit: 2 });
    assert.deepEqual(
      first.tasks.map((task) => task.id),
      [created[4]!.task.id, created[3]!.task.id],
    );
    const second = await store.listTasks({ project, limit: 10, cursor: first.nextCursor! });
    assert.equal(second.tasks.length, 3);
    assert.equal(second.nextCursor, null);
    const even = await store.listTasks({ project, limit: 10, label: "even" });
    assert.equal(even.tasks.length, 3);
    const queued = await store.listTasks({ project, limit: 10, state: "queued", functionName: "hello" });
    assert.equal(queued.tasks.length, 5);
    await store.close();
  });

  test("cuts a long log once and marks the cut", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.finishAttempts([end(claimed!.id, 1, { log: "x".repeat(5000) })]);
    const log = (await store.getTaskLog(project, claimed!.id)) ?? "";
    assert.ok(log.startsWith("x".repeat(1000)));
    assert.match(log, /log truncated/);
    assert.ok(log.length < 1100);
    await store.close();
  });
}
