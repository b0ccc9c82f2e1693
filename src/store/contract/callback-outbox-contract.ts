/** The `CallbackOutbox` part of the `Store` contract: callbacks handed out for delivery. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "../store.js";
import { lane, at, storeWithFunction, newTask, end } from "./contract-fixtures.js";

export function runCallbackOutboxContract(makeStore: () => Promise<Store>): void {
  test("a claimed callback is not handed out again before its delivery lease ends", async () => {
    const store = await storeWithFunction(makeStore);
    const task = newTask({ callbackUrl: "http://127.0.0.1:9/hook" });
    await store.enqueueTasks([task]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.finishAttempts([end(claimed!.id, claimed!.attempt, { finishedAt: at(10) })]);
    const [due] = await store.claimDueCallbacks(at(10), 10, 1000);
    assert.equal(due?.task.id, task.id);
    assert.deepEqual(await store.claimDueCallbacks(at(500), 10, 1000), [], "taken for one delivery");
    assert.equal(
      (await store.claimDueCallbacks(at(1010), 10, 1000))[0]?.task.id,
      task.id,
      "due again after the lease",
    );
  });
}
