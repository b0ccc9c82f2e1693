/** The `ProjectCatalog` part of the `Store` contract: projects, what they hold, and their deletion. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError } from "../../domain/errors.js";
import type { Lane } from "../../domain/lane.js";
import type { Store } from "../store.js";
import { at, deployLane, end, lane, newTask, project, storeWithFunction } from "./contract-fixtures.js";

const projectNotFound = (error: unknown) => error instanceof KilnError && error.code === "PROJECT_NOT_FOUND";

export function runProjectCatalogContract(makeStore: () => Promise<Store>): void {
  test("creates, reads, lists by name and updates projects; creating a name again changes nothing", async () => {
    const store = await makeStore();
    const beta = await store.createProject("beta", "the second", at(1));
    assert.deepEqual(beta, {
      name: "beta",
      description: "the second",
      plan: null,
      createdAt: at(1),
      updatedAt: at(1),
    });
    await store.createProject("alpha", "", at(2));
    assert.equal(await store.createProject("beta", "again", at(3)), null);
    assert.deepEqual(await store.getProject("beta"), beta, "the second create left the project as it was");
    await store.ensureProject("beta", at(4));
    assert.deepEqual(
      await store.getProject("beta"),
      beta,
      "ensureProject leaves a project that exists alone",
    );
    await store.ensureProject("gamma", at(5));
    assert.deepEqual(await store.getProject("gamma"), {
      name: "gamma",
      description: "",
      plan: null,
      createdAt: at(5),
      updatedAt: at(5),
    });
    assert.deepEqual(
      (await store.listProjects()).map((p) => p.name),
      ["alpha", "beta", "gamma"],
    );
    const updated = await store.updateProject("beta", { description: "renamed" }, at(6));
    assert.deepEqual(updated, {
      name: "beta",
      description: "renamed",
      plan: null,
      createdAt: at(1),
      updatedAt: at(6),
    });
    assert.deepEqual(await store.getProject("beta"), updated);
    const untouched = await store.updateProject("beta", {}, at(7));
    assert.equal(untouched?.description, "renamed", "a change that names nothing keeps the description");
    assert.equal(await store.updateProject("nope", { description: "x" }, at(8)), null);
    assert.equal(await store.getProject("nope"), null);
    assert.deepEqual([await store.hasProject("alpha"), await store.hasProject("nope")], [true, false]);
    await store.close();
  });

  test("a project's callback key is stored at its first use, kept by later calls, and replaced by a rotation", async () => {
    const store = await makeStore();
    await store.createProject("beta", "", at(1));
    assert.equal(await store.callbackSecret("beta", "first"), "first");
    assert.equal(await store.callbackSecret("beta", "second"), "first", "a later candidate replaced the key");
    assert.equal(await store.callbackSecret("nope", "x"), null);
    assert.equal(await store.rotateCallbackSecret("beta", "rotated", at(2)), true);
    assert.equal(await store.callbackSecret("beta", "third"), "rotated");
    assert.equal(await store.rotateCallbackSecret("nope", "x", at(2)), false);
    await store.createProject("gamma", "", at(3));
    assert.equal(await store.callbackSecret("gamma", "own"), "own", "projects share one key");
  });

  test("counts a project's functions and its queued, delayed and running tasks", async () => {
    const store = await storeWithFunction(makeStore);
    assert.deepEqual(await store.countProjectContents(project), { functions: 1, unfinishedTasks: 0 });
    const [first, , third] = await store.enqueueTasks([newTask(), newTask({ runAt: at(100) }), newTask()]);
    await store.claimTasks(lane, 1, at(1));
    assert.deepEqual(await store.countProjectContents(project), { functions: 1, unfinishedTasks: 3 });
    await store.finishAttempts([end(first!.task.id, 1)]);
    await store.cancelPendingTask(project, third!.task.id, at(3));
    assert.deepEqual(await store.countProjectContents(project), { functions: 1, unfinishedTasks: 1 });
    assert.deepEqual(await store.countProjectContents("nope"), { functions: 0, unfinishedTasks: 0 });
    await store.close();
  });

  test("refuses to delete a project while a task is queued, running or delayed, and changes nothing", async () => {
    const store = await storeWithFunction(makeStore);
    const [task] = await store.enqueueTasks([newTask()]);
    const refused = { deleted: false, reason: "unfinished_tasks", unfinishedTasks: 1 };
    assert.deepEqual(await store.deleteProject(project), refused, "queued");
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    assert.deepEqual(await store.deleteProject(project), refused, "running");
    const failure = { kind: "handler_error", message: "boom", retryable: true } as const;
    const retry = { state: "delayed", runAt: at(50) } as const;
    await store.finishAttempts([end(claimed!.id, 1, { outcome: "handler_error", failure, next: retry })]);
    assert.deepEqual(await store.deleteProject(project), refused, "delayed");
    assert.equal((await store.getTask(project, task!.task.id))?.state, "delayed");
    assert.notEqual(await store.getFunction(project, lane.functionName), null);
    assert.notEqual(await store.getProject(project), null);
    await store.releaseDueTasks(at(50));
    const [again] = await store.claimTasks(lane, 1, at(51));
    await store.finishAttempts([end(again!.id, 2)]);
    assert.deepEqual(await store.deleteProject(project), { deleted: true }, "once every task has ended");
    assert.deepEqual(await store.deleteProject(project), { deleted: false, reason: "not_found" });
    await store.close();
  });

  test("deleting a project removes all it holds and leaves another project, and the archive they share, alone", async () => {
    const store = await storeWithFunction(makeStore);
    const other: Lane = { project: "other", functionName: "shared", revision: lane.revision };
    await store.ensureProject(other.project, at(0));
    await deployLane(store, other);
    const onlyHere: Lane = { project, functionName: "solo", revision: "b".repeat(64) };
    await deployLane(store, onlyHere);
    const callbackUrl = "http://127.0.0.1:9/hook";
    const [mine] = await store.enqueueTasks([newTask({ callbackUrl })]);
    const [theirs] = await store.enqueueTasks([newTask({ ...other, callbackUrl })]);
    for (const [claimLane, finishedAt] of [
      [lane, at(2)],
      [other, at(20)],
    ] as const) {
      const [claimed] = await store.claimTasks(claimLane, 1, at(1));
      await store.finishAttempts([end(claimed!.id, 1, { finishedAt, log: "out\n" })]);
    }
    assert.deepEqual(await store.nextCallbackAt(), at(2), "both callbacks wait");

    assert.deepEqual(await store.deleteProject(project), { deleted: true });
    assert.equal(await store.getProject(project), null);
    assert.deepEqual(
      (await store.listProjects()).map((p) => p.name),
      [other.project],
    );
    assert.equal(await store.getFunction(project, lane.functionName), null);
    assert.deepEqual(await store.listFunctions(project), []);
    assert.deepEqual(await store.listRevisions(project, lane.functionName), []);
    assert.equal(await store.getTask(project, mine!.task.id), null);
    assert.deepEqual((await store.listTasks({ project, limit: 10 })).tasks, []);
    assert.equal(await store.getTaskLog(project, mine!.task.id), null);
    assert.deepEqual(await store.nextCallbackAt(), at(20), "its pending callback is gone");
    assert.equal(await store.getRevisionArchive(onlyHere.revision), null, "an archive only it used is gone");
    assert.deepEqual(await store.countProjectContents(project), { functions: 0, unfinishedTasks: 0 });

    assert.equal(
      (await store.getFunction(other.project, other.functionName))?.currentRevision,
      lane.revision,
    );
    assert.deepEqual([...((await store.getRevisionArchive(lane.revision)) ?? [])], [1, 2, 3]);
    assert.equal((await store.getTask(other.project, theirs!.task.id))?.state, "succeeded");
    assert.equal(await store.getTaskLog(other.project, theirs!.task.id), "out\n");
    assert.deepEqual(
      (await store.claimDueCallbacks(at(20), 10, 1000)).map((due) => due.task.id),
      [theirs!.task.id],
    );
    await store.close();
  });

  test("a deletion and an enqueue into the project at once: one of them is refused, no task is left behind", async () => {
    const store = await storeWithFunction(makeStore);
    const [earlier] = await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.finishAttempts([end(claimed!.id, 1)]);
    const [deletion, enqueue] = await Promise.allSettled([
      store.deleteProject(project),
      store.enqueueTasks([newTask({ createdAt: at(2), runAt: at(2) })]),
    ]);
    assert.equal(deletion.status, "fulfilled");
    const deleted = deletion.status === "fulfilled" && deletion.value.deleted;
    assert.equal(enqueue.status, deleted ? "rejected" : "fulfilled", "exactly one of them took effect");
    if (enqueue.status === "rejected") assert.ok(projectNotFound(enqueue.reason));
    await store.ensureProject(project, at(3));
    assert.equal((await store.listTasks({ project, limit: 10 })).tasks.length, deleted ? 0 : 2);
    assert.equal((await store.getTask(project, earlier!.task.id))?.state, deleted ? undefined : "succeeded");
    await store.close();
  });

  test("an enqueue into a deleted project is refused; created again, the project takes and runs tasks", async () => {
    const store = await storeWithFunction(makeStore);
    const [done] = await store.enqueueTasks([newTask()]);
    const [claimed] = await store.claimTasks(lane, 1, at(1));
    await store.finishAttempts([end(claimed!.id, 1)]);
    assert.deepEqual(await store.deleteProject(project), { deleted: true });

    await assert.rejects(store.enqueueTasks([newTask()]), projectNotFound);
    await assert.rejects(
      store.enqueueAndClaimTasks([newTask()], { lane, limit: 1, now: at(2) }),
      projectNotFound,
    );
    assert.deepEqual(await store.claimTasks(lane, 1, at(2)), []);
    assert.deepEqual(await store.listReadyLanes(), []);

    await store.ensureProject(project, at(3));
    assert.deepEqual(
      (await store.listTasks({ project, limit: 10 })).tasks,
      [],
      "the refused enqueues stored nothing",
    );
    await deployLane(store, lane);
    const [fresh] = await store.enqueueTasks([newTask({ createdAt: at(4), runAt: at(4) })]);
    assert.deepEqual(
      (await store.claimTasks(lane, 5, at(5))).map((task) => task.id),
      [fresh!.task.id],
    );
    assert.equal((await store.getTask(project, fresh!.task.id))?.state, "running");
    assert.equal(await store.getTask(project, done!.task.id), null);
    await store.close();
  });
}
