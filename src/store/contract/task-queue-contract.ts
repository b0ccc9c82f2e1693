/** The `TaskQueue` part of the `Store` contract: enqueue, claims, attempt ends, delays, recovery, cancel and retry. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "../store.js";
import { project, lane, at, storeWithFunction, newTask, end } from "./contract-fixtures.js";

export function runTaskQueueContract(makeStore: () => Promise<Store>): void {
  test("claims the highest priority first and keeps FIFO within a priority", async () => {
    const store = await storeWithFunction(makeStore);
    const low1 = newTask({ priority: 0 });
    const high = newTask({ priority: 2 });
    const low2 = newTask({ priority: 0 });
    const mid = newTask({ priority: 1 });
    await store.enqueueTasks([low1, high, low2, mid]);
    const claimed = await store.claimTasks(lane, 10, at(5));
    assert.deepEqual(
      claimed.map((task) => task.id),
      [high.id, mid.id, low1.id, low2.id],
    );
    assert.deepEqual(await store.claimTasks(lane, 10, at(6)), [], "a task is claimed once");
    await store.close();
  });

  test("claims at most the limit and numbers attempts from 1", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask(), newTask(), newTask()]);
    const claimed = await store.claimTasks(lane, 2, at(5));
    assert.equal(claimed.length, 2);
    assert.deepEqual(
      claimed.map((task) => task.attempt),
      [1, 1],
    );
    const task = await store.getTask(project, claimed[0]!.id);
    assert.equal(task?.state, "running");
    assert.equal(task?.startLatencyMs, 5);
    await store.close();
  });

  test("enqueues and claims in one commit, the claimed tasks shown running", async () => {
    const store = await storeWithFunction(makeStore);
    const [older] = await store.enqueueTasks([newTask({ priority: 0 })]);
    const urgent = newTask({ priority: 2, createdAt: at(10), runAt: at(10) });
    const later = newTask({ createdAt: at(10), runAt: at(10) });
    const { results, claimed } = await store.enqueueAndClaimTasks([urgent, later], {
      lane,
      limit: 2,
      now: at(12),
    });
    assert.deepEqual(
      claimed.map((task) => task.id),
      [urgent.id, older!.task.id],
    );
    assert.deepEqual(
      results.map((result) => result.task.state),
      ["running", "queued"],
    );
    assert.equal(results[0]?.task.startLatencyMs, 2);
    assert.equal((await store.getTask(project, later.id))?.state, "queued");
    await store.close();
  });

  test("concurrent claimers never get the same task", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks(Array.from({ length: 200 }, () => newTask()));
    const batches = await Promise.all(Array.from({ length: 8 }, () => store.claimTasks(lane, 40, at(1))));
    const ids = batches.flat().map((task) => task.id);
    assert.equal(ids.length, 200);
    assert.equal(new Set(ids).size, 200);
    await store.close();
  });

  test("a repeated idempotency key returns the existing task instead of a second one", async () => {
    const store = await storeWithFunction(makeStore);
    const [first] = await store.enqueueTasks([newTask({ idempotencyKey: "k1" })]);
    const [again, other] = await store.enqueueTasks([newTask({ idempotencyKey: "k1" }), newTask()]);
    assert.equal(first?.created, true);
    assert.equal(again?.created, false);
    assert.equal(again?.task.id, first?.task.id);
    assert.equal(other?.created, true);
    assert.equal((await store.listTasks({ project, limit: 10 })).tasks.length, 2);
    await store.close();
  });

  test("a delayed task is not claimable until released at its run time", async () => {
    const store = await storeWithFunction(makeStore);
    const [delayed] = await store.enqueueTasks([newTask({ runAt: at(1000) })]);
    assert.equal(delayed?.task.state, "delayed");
    assert.deepEqual(await store.claimTasks(lane, 1, at(10)), []);
    assert.deepEqual(await store.nextRunAt(), at(1000));
    assert.deepEqual(await store.releaseDueTasks(at(999)), []);
    assert.deepEqual(await store.releaseDueTasks(at(1000)), [lane]);
    assert.equal((await store.claimTasks(lane, 1, at(1001))).length, 1);
    assert.equal(await store.nextRunAt(), null);
    await store.close();
  });

  test("records an attempt's end with its result, log and timings", async () => {
    const store = await storeWithFunction(makeStore);
    const [created] = await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.finishAttempts([end(claimed!.id, 1, { log: "hello\n" })]);
    const task = await store.getTask(project, created!.task.id);
    assert.equal(task?.state, "succeeded");
    assert.equal(task?.result, "ok");
    assert.deepEqual(task?.finishedAt, at(2));
    assert.equal(task?.attempts.length, 1);
    assert.equal(task?.attempts[0]?.outcome, "succeeded");
    assert.equal(await store.getTaskLog(project, created!.task.id), "hello\n");
    await store.close();
  });

  test("ignores the end of an attempt that is no longer the running one (fencing)", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.recoverInterruptedTasks(at(3), 3);
    const [second] = await store.claimTasks(lane, 1, at(4));
    assert.equal(second?.attempt, 2);
    await store.finishAttempts([end(claimed!.id, 1, { result: '"stale"' })]);
    const task = await store.getTask(project, claimed!.id);
    assert.equal(task?.state, "running");
    assert.equal(task?.result, null);
    await store.close();
  });

  test("a failed attempt with retries left waits as delayed, charged against the retries", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    const failure = { kind: "handler_error", message: "boom", retryable: true } as const;
    await store.finishAttempts([
      end(claimed!.id, 1, {
        outcome: "handler_error",
        failure,
        result: null,
        next: { state: "delayed", runAt: at(500) },
      }),
    ]);
    const task = await store.getTask(project, claimed!.id);
    assert.equal(task?.state, "delayed");
    assert.deepEqual(task?.attempts[0]?.failure, failure);
    await store.releaseDueTasks(at(500));
    const [retry] = await store.claimTasks(lane, 1, at(501));
    assert.equal(retry?.attempt, 2);
    assert.equal(retry?.chargedAttempts, 1);
    await store.close();
  });

  test("a task started when its first attempt really started, as that attempt's end records, not at its claim", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(5));
    const claimedTask = await store.getTask(project, claimed!.id);
    assert.deepEqual([claimedTask?.startedAt, claimedTask?.startLatencyMs], [at(5), 5], "until it ends");
    const failure = { kind: "handler_error", message: "boom", retryable: true } as const;
    await store.finishAttempts([
      end(claimed!.id, 1, {
        startedAt: at(20),
        finishedAt: at(30),
        outcome: "handler_error",
        failure,
        result: null,
        next: { state: "delayed", runAt: at(40) },
      }),
    ]);
    const ended = await store.getTask(project, claimed!.id);
    assert.deepEqual([ended?.startedAt, ended?.startLatencyMs], [at(20), 20]);
    await store.releaseDueTasks(at(40));
    const [retry] = await store.claimTasks(lane, 1, at(50));
    await store.finishAttempts([end(retry!.id, 2, { startedAt: at(60), finishedAt: at(70) })]);
    const done = await store.getTask(project, claimed!.id);
    assert.deepEqual(
      [done?.startedAt, done?.startLatencyMs, done?.attempts.map((attempt) => attempt.startedAt)],
      [at(20), 20, [at(20), at(60)]],
      "a later attempt leaves the task's start as it was",
    );
    await store.close();
  });

  test("recovery requeues interrupted tasks as lost without charging retries, and fails a task lost too often", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    for (let life = 1; life <= 3; life++) {
      const [claimed] = await store.claimTasks(lane, 1, at(life * 10));
      assert.equal(claimed?.chargedAttempts, 0);
      assert.equal(await store.recoverInterruptedTasks(at(life * 10 + 5), 3), 1);
    }
    const [task] = (await store.listTasks({ project, limit: 1 })).tasks;
    assert.equal(task?.state, "failed");
    assert.equal(task?.failure?.kind, "lost");
    assert.deepEqual(
      task?.attempts.map((attempt) => attempt.outcome),
      ["lost", "lost", "lost"],
    );
    await store.close();
  });

  test("a handed-back attempt is queued again as if it never started: no attempt, not lost, not charged", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [first] = await store.claimTasks(lane, 1, at(10), { maxConcurrency: 1 });
    assert.equal(first?.attempt, 1);
    // A stale attempt number is fenced off; the running one is handed back.
    assert.equal(await store.handBackTasks([{ taskId: first.id, attempt: 2 }]), 0);
    assert.equal(await store.handBackTasks([{ taskId: first.id, attempt: 1 }]), 1);
    assert.equal(await store.handBackTasks([{ taskId: first.id, attempt: 1 }]), 0, "handed back once");
    const task = await store.getTask(project, first.id);
    assert.equal(task?.state, "queued");
    assert.deepEqual(task?.attempts, []);
    assert.equal(task?.lostAttempts, 0);
    assert.equal(task?.startedAt, null);
    assert.deepEqual(await store.listReadyLanes(), [lane]);
    // The function's slot was given back: a claim within maxConcurrency 1 takes the task again.
    const [again] = await store.claimTasks(lane, 1, at(20), { maxConcurrency: 1 });
    assert.equal(again?.attempt, 1);
    assert.equal(again?.chargedAttempts, 0);
    await store.close();
  });

  test("cancels a pending task but leaves a running one to its node", async () => {
    const store = await storeWithFunction(makeStore);
    const [pending, running] = await store.enqueueTasks([newTask({ priority: 0 }), newTask({ priority: 2 })]);
    await store.claimTasks(lane, 1, at(1));
    assert.equal((await store.cancelPendingTask(project, pending!.task.id, at(2)))?.state, "cancelled");
    assert.equal((await store.cancelPendingTask(project, running!.task.id, at(2)))?.state, "running");
    assert.equal(await store.cancelPendingTask(project, "nope", at(2)), null);
    await store.close();
  });

  test("requeues a finished task for another attempt, but not an unfinished one", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    assert.equal((await store.requeueFinishedTask(project, claimed!.id, at(2)))?.state, "running");
    await store.finishAttempts([end(claimed!.id, 1)]);
    const requeued = await store.requeueFinishedTask(project, claimed!.id, at(3));
    assert.equal(requeued?.state, "queued");
    assert.equal(requeued?.result, null);
    const [again] = await store.claimTasks(lane, 1, at(4));
    assert.equal(again?.attempt, 2);
    await store.close();
  });

  test("a claim never takes a function past its maxConcurrency, counting what already runs", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks(Array.from({ length: 10 }, () => newTask()));
    const first = await store.claimTasks(lane, 2, at(1), { maxConcurrency: 3 });
    assert.equal(first.length, 2);
    assert.equal((await store.claimTasks(lane, 5, at(2), { maxConcurrency: 3 })).length, 1);
    assert.equal((await store.claimTasks(lane, 5, at(3), { maxConcurrency: 3 })).length, 0);
    await store.finishAttempts([end(first[0]!.id, first[0]!.attempt)]);
    const { claimed } = await store.enqueueAndClaimTasks([newTask()], {
      lane,
      limit: 5,
      now: at(4),
      maxConcurrency: 3,
    });
    assert.equal(claimed.length, 1, "the combined enqueue and claim holds the limit too");
  });

  test("attempts claimed while a function had no limit count against the limit it gets", async () => {
    const store = await storeWithFunction(makeStore);
    await store.enqueueTasks(Array.from({ length: 5 }, () => newTask()));
    const first = await store.claimTasks(lane, 2, at(1));
    const fn = await store.getFunction(project, lane.functionName);
    assert.ok(fn !== null);
    await store.updateFunctionSettings(
      project,
      lane.functionName,
      { ...fn.settings, maxConcurrency: 2 },
      at(2),
    );
    assert.equal(
      (await store.claimTasks(lane, 5, at(3), { maxConcurrency: 2 })).length,
      0,
      "two run already",
    );
    await store.finishAttempts([end(first[0]!.id, first[0]!.attempt)]);
    const next = await store.claimTasks(lane, 5, at(4), { maxConcurrency: 2 });
    assert.equal(next.length, 1, "the end gave its slot back");
    await store.close();
  });
}
