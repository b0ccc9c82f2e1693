/**
 * Several nodes on one schema, as their stores and clusters see it: `maxConcurrency` across nodes,
 * leases and their recovery, fencing of a dead node's late ends, and news through LISTEN/NOTIFY.
 */
import type { Lane } from "../../domain/lane.js";
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { ClusterEvents } from "../../cluster/cluster.js";
import { StoreUnavailableError } from "../store.js";
import { PostgresCluster } from "./postgres-cluster.js";
import { PostgresStore } from "./postgres-store.js";
import {
  at,
  deployHello,
  lane,
  newTask,
  project,
  skipWithoutDatabase,
  TestDatabase,
  testDatabaseUrl,
  waitFor,
} from "./test-database.js";

const database = new TestDatabase(testDatabaseUrl ?? "");
if (testDatabaseUrl !== null) await database.check();
const clusters: PostgresCluster[] = [];
after(async () => {
  await Promise.all(clusters.map((cluster) => cluster.leave().catch(() => {})));
  await database.close();
});

/** What a node heard from the others. */
class Heard implements ClusterEvents {
  lanes: Lane[] = [];
  started: string[] = [];
  ended: string[] = [];
  cancelled: string[] = [];
  functions: string[] = [];
  /** The tasks the node says it runs. */
  known: string[] = [];
  /** The cluster this node joined. */
  cluster: PostgresCluster | null = null;
  laneReady(lane: Lane) {
    this.lanes.push(lane);
  }
  taskStarted(id: string) {
    this.started.push(id);
  }
  taskEnded(id: string) {
    this.ended.push(id);
  }
  cancelRequested(id: string) {
    this.cancelled.push(id);
  }
  functionChangedElsewhere(project: string, name: string, sandboxesStale: boolean) {
    this.functions.push(`${project}/${name} ${sandboxesStale}`);
  }
  poll() {}
  ownTaskIds() {
    return this.known;
  }
}

/** When node-busy last renewed its lease (epoch ms), read on the test's own connection. */
async function listAliveHeartbeat(schema: string): Promise<number | null> {
  const { rows } = await database.admin.query<{ heartbeat_at: number }>(
    `SELECT heartbeat_at FROM ${schema}.nodes WHERE id = 'node-busy'`,
  );
  return rows[0]?.heartbeat_at ?? null;
}

async function joinCluster(store: PostgresStore, leaseTtlMs = 600): Promise<Heard> {
  const cluster = new PostgresCluster({
    store,
    connectionString: database.url,
    leaseTtlMs,
    // Long: what these tests see must come from notifications and heartbeats, not polls.
    pollIntervalMs: 60_000,
    maxLostAttempts: 3,
  });
  const heard = new Heard();
  heard.cluster = cluster;
  await cluster.join(heard);
  clusters.push(cluster);
  return heard;
}

const succeeded = {
  outcome: "succeeded",
  failure: null,
  result: "1",
  log: "",
  next: { state: "succeeded" },
} as const;

describe("nodes sharing one PostgreSQL schema", { timeout: 30_000, skip: skipWithoutDatabase }, () => {
  test("maxConcurrency holds across nodes claiming at once", async () => {
    const schema = database.fresh();
    const nodes = await Promise.all(["a", "b", "c"].map((id) => database.openStore(schema, `node-${id}`)));
    await deployHello(nodes[0]!);
    await nodes[0]!.enqueueTasks(Array.from({ length: 50 }, () => newTask()));
    const claimRound = async () =>
      Promise.all(nodes.map((node) => node.claimTasks(lane, 5, at(1), { maxConcurrency: 5 })));
    const first = await claimRound();
    assert.equal(first.flat().length, 5, "three nodes asking for 5 each start 5 in all");
    assert.equal((await claimRound()).flat().length, 0, "none while 5 run");
    // Two tasks end, each recorded by the node that claimed it.
    const ending = first.flatMap((claimed, node) => claimed.map((task) => ({ task, node }))).slice(0, 2);
    for (const { task, node } of ending) {
      await nodes[node]!.finishAttempts([
        { taskId: task.id, attempt: task.attempt, startedAt: at(1), finishedAt: at(2), ...succeeded },
      ]);
    }
    assert.equal((await claimRound()).flat().length, 2, "as many as ended");
    assert.equal((await nodes[2]!.claimTasks(lane, 5, at(3))).length, 5, "no limit asked, none applied");
  });

  test("a node whose lease expired has its attempts recovered as lost elsewhere, and its late end is fenced off", async () => {
    const schema = database.fresh();
    const dead = await database.openStore(schema, "node-dead");
    const alive = await database.openStore(schema, "node-alive");
    const survivor = await database.openStore(schema, "node-survivor");
    await deployHello(dead);
    await database.admin.query(`INSERT INTO ${schema}.nodes VALUES ('node-dead', 0, 0, 0)`);
    const heardByAlive = await joinCluster(alive);
    await joinCluster(survivor, 60_000); // a live node whose tasks must be left alone
    const [lostTask, keptTask] = [newTask(), newTask()];
    await dead.enqueueTasks([lostTask]);
    const [claimedByDead] = await dead.claimTasks(lane, 1, at(1));
    await survivor.enqueueTasks([keptTask]);
    const [claimedBySurvivor] = await survivor.claimTasks(lane, 1, at(1));
    assert.ok(claimedByDead && claimedBySurvivor);
    // Both enqueues were news to the live node; recovery is not due before it has renewed for a lease.
    await waitFor(() => Promise.resolve(heardByAlive.lanes.length === 2), "the enqueues are heard");
    heardByAlive.lanes = [];

    await waitFor(
      async () => (await alive.getTask(project, lostTask.id))?.state === "queued",
      "the lost task is queued again",
    );
    const requeued = await alive.getTask(project, lostTask.id);
    assert.deepEqual(
      requeued?.attempts.map((attempt) => attempt.outcome),
      ["lost"],
    );
    assert.match(requeued?.attempts[0]?.failure?.message ?? "", /lease/);
    // Its news follows the commit the poll above may have seen first.
    await waitFor(() => Promise.resolve(heardByAlive.lanes.length > 0), "the recovering node wakes the lane");
    assert.deepEqual(heardByAlive.lanes, [lane], "the recovering node wakes the lane once");
    assert.equal(
      (await survivor.getTask(project, keptTask.id))?.state,
      "running",
      "a live node keeps its task",
    );

    heardByAlive.known = [lostTask.id]; // it runs the retry, claimed (at a test time) long ago
    const [retried] = await alive.claimTasks(lane, 1, at(10));
    assert.equal(retried?.id, lostTask.id);
    await dead.finishAttempts([
      {
        taskId: lostTask.id,
        attempt: claimedByDead.attempt,
        startedAt: at(1),
        finishedAt: at(11),
        ...succeeded,
        result: '"stale"',
      },
    ]);
    assert.equal(
      (await alive.getTask(project, lostTask.id))?.state,
      "running",
      "the dead node's end changed nothing",
    );
    await alive.finishAttempts([
      { taskId: lostTask.id, attempt: retried.attempt, startedAt: at(10), finishedAt: at(12), ...succeeded },
    ]);
    const done = await alive.getTask(project, lostTask.id);
    assert.equal(done?.state, "succeeded");
    assert.equal(done?.result, 1);
    assert.deepEqual(
      done?.attempts.map((attempt) => attempt.outcome),
      ["lost", "succeeded"],
    );
  });

  test("a running task its node does not know of is recovered once claimed two leases ago", async () => {
    const schema = database.fresh();
    const store = await database.openStore(schema, "node-forgetful");
    await deployHello(store);
    const heard = await joinCluster(store);
    const [known, forgotten] = [newTask(), newTask()];
    heard.known = [known.id];
    await store.enqueueTasks([known, forgotten]);
    assert.equal((await store.claimTasks(lane, 2, at(1))).length, 2);
    await waitFor(
      async () => (await store.getTask(project, forgotten.id))?.state === "queued",
      "the forgotten task is queued again",
    );
    const requeued = await store.getTask(project, forgotten.id);
    assert.match(requeued?.attempts[0]?.failure?.message ?? "", /lost track/);
    assert.equal((await store.getTask(project, known.id))?.state, "running", "a task it knows is left alone");
  });

  test("an enqueue wakes the lane on other nodes; a watched task's start and end reach the watching node; cancels and function changes reach the others", async () => {
    const schema = database.fresh();
    const a = await database.openStore(schema, "node-a");
    const b = await database.openStore(schema, "node-b");
    await deployHello(a);
    const heardByA = await joinCluster(a);
    const heardByB = await joinCluster(b);
    const task = newTask();
    await a.enqueueTasks([task]);
    await waitFor(() => Promise.resolve(heardByB.lanes.length > 0), "node b hears of the lane");
    assert.deepEqual(heardByB.lanes, [lane]);
    assert.deepEqual(heardByA.lanes, [], "a node does not hear its own news");

    assert.equal((await b.watchTask(project, task.id))?.state, "queued");
    heardByA.known = [task.id];
    const [claimed] = await a.claimTasks(lane, 1, at(1));
    await waitFor(() => Promise.resolve(heardByB.started.includes(task.id)), "node b hears the start");
    // A cancel request is answered true only when a live node runs the task, which then hears it.
    assert.equal(await heardByB.cluster?.requestCancel(task.id), true);
    await waitFor(() => Promise.resolve(heardByA.cancelled.includes(task.id)), "node a hears the cancel");
    await a.finishAttempts([
      { taskId: task.id, attempt: claimed!.attempt, startedAt: at(1), finishedAt: at(2), ...succeeded },
    ]);
    await waitFor(() => Promise.resolve(heardByB.ended.includes(task.id)), "node b hears the end");
    assert.equal(await heardByB.cluster?.requestCancel(task.id), false, "a finished task runs nowhere");
    assert.equal(await heardByB.cluster?.requestCancel("no-such-task"), false);
    await heardByB.cluster?.announceFunctionChanged(project, "hello", true);
    await waitFor(() => Promise.resolve(heardByA.functions.length > 0), "node a hears of the change");
    assert.deepEqual(heardByA.functions, ["default/hello true"]);
  });

  test("after a project is deleted and created again, the node that deleted it and a node told of it claim from its new lanes", async () => {
    const schema = database.fresh();
    const a = await database.openStore(schema, "node-a");
    const b = await database.openStore(schema, "node-b");
    await deployHello(a);
    await joinCluster(a);
    const heardByB = await joinCluster(b);
    // Both nodes know the lane's ids: b enqueued into it, a claimed from it.
    const first = newTask();
    await b.enqueueTasks([first]);
    await a.claimTasks(lane, 1, at(1));
    await a.finishAttempts([
      { taskId: first.id, attempt: 1, startedAt: at(1), finishedAt: at(2), ...succeeded },
    ]);
    assert.deepEqual(await a.deleteProject(project), { deleted: true });
    await deployHello(a);
    const second = newTask();
    await b.enqueueTasks([second]);
    assert.deepEqual(
      (await a.claimTasks(lane, 5, at(3))).map((task) => task.id),
      [second.id],
      "the node that deleted the project",
    );
    heardByB.lanes = [];
    const third = newTask();
    await a.enqueueTasks([third]);
    // The deletion was announced before this enqueue: node b has heard it once it hears of the lane.
    await waitFor(() => Promise.resolve(heardByB.lanes.length > 0), "node b hears of the lane");
    assert.deepEqual(
      (await b.claimTasks(lane, 5, at(4))).map((task) => task.id),
      [third.id],
      "a node told of the deletion",
    );
  });

  test("a node that leaves hands its running tasks back at once and is listed as not alive", async () => {
    const schema = database.fresh();
    const store = await database.openStore(schema, "node-leaving");
    await deployHello(store);
    const cluster = new PostgresCluster({
      store,
      connectionString: database.url,
      leaseTtlMs: 60_000,
      pollIntervalMs: 60_000,
      maxLostAttempts: 3,
    });
    await cluster.join(new Heard());
    const task = newTask();
    await store.enqueueTasks([task]);
    await store.claimTasks(lane, 1, at(1));
    assert.deepEqual(
      (await cluster.listNodes()).map((node) => [node.id, node.alive]),
      [["node-leaving", true]],
    );
    await cluster.leave();
    assert.equal((await store.getTask(project, task.id))?.state, "queued");
    assert.deepEqual(
      (await cluster.listNodes()).map((node) => [node.id, node.alive]),
      [["node-leaving", false]],
    );
  });

  test("the lease is renewed while every connection of the store's pools is busy", async () => {
    const schema = database.fresh();
    const store = await database.openStore(schema, "node-busy");
    await deployHello(store);
    // Its lane is known (its id cached) before the pools fill up.
    const [queued] = await store.enqueueTasks([newTask()]);
    await joinCluster(store, 600);
    // API-like reads (the durable pool) and claims (the fast pool), 8 each, all of their connections,
    // held for a second behind a lock on the tasks table.
    const locker = await database.admin.connect();
    let busy: Promise<unknown[]> = Promise.resolve([]);
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.tasks IN ACCESS EXCLUSIVE MODE`);
      busy = Promise.all([
        ...Array.from({ length: 8 }, () => store.getTask(project, queued!.task.id)),
        ...Array.from({ length: 8 }, () => store.claimTasks(lane, 1, at(1))),
      ]);
      await waitFor(async () => {
        const { rows } = await database.admin.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_stat_activity
            WHERE application_name IN ('kiln node-busy durable', 'kiln node-busy fast')
              AND wait_event_type = 'Lock'`,
        );
        return rows[0]?.waiting === 16;
      }, "every connection of both pools waits");
      const filled = (await listAliveHeartbeat(schema)) ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const during = (await listAliveHeartbeat(schema)) ?? 0;
      // Renewals come every 200 ms: some must have landed while the pools were full.
      assert.ok(
        during > filled,
        `no heartbeat was recorded while the pools were busy (${during - filled} ms)`,
      );
    } finally {
      await locker.query("COMMIT");
      locker.release();
      await busy;
    }
  });

  test("a database that cannot be reached is reported as StoreUnavailableError", async () => {
    const store = new PostgresStore({
      connectionString: "postgres://127.0.0.1:1/test",
      nodeId: "node-x",
      maxLogChars: 100,
    });
    await assert.rejects(store.getTask(project, "any"), StoreUnavailableError);
    await assert.rejects(store.claimTasks(lane, 1, at(1)), StoreUnavailableError);
    await store.close();
  });
});
