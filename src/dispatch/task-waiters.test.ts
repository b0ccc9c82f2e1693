import assert from "node:assert/strict";
import { test } from "node:test";
import { TaskWaiters } from "./task-waiters.js";

test("a waiter wakes when its task finishes, before its timeout", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const waiters = new TaskWaiters();
  let woken = false;
  const wait = waiters.wait("t1", 30_000);
  void wait.finished.then(() => (woken = true));
  waiters.notify("t2");
  await Promise.resolve();
  assert.equal(woken, false, "another task's end does not wake it");
  waiters.notify("t1");
  await wait.finished;
  assert.equal(woken, true);
});

test("a waiter gives up after its timeout, and releaseAll ends every wait", { timeout: 2000 }, async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const waiters = new TaskWaiters();
  const timedOut = waiters.wait("t1", 1000);
  t.mock.timers.tick(1000);
  await timedOut.finished;
  const a = waiters.wait("t2", 60_000);
  const b = waiters.wait("t3", 60_000);
  waiters.releaseAll();
  await Promise.all([a.finished, b.finished]);
});
