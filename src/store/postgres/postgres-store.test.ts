/**
 * The `Store` contract against PostgreSQL, plus what only a shared database shows: several nodes on one
 * schema. Each store gets a fresh schema, dropped at the end. Skipped, saying so, without
 * `KILN_TEST_DATABASE_URL` (see `test-database.ts`).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { KilnError } from "../../domain/errors.js";
import { runStoreContract } from "../contract/store-contract.js";
import { migrations } from "./migrations/index.js";
import type { PostgresStore } from "./postgres-store.js";
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
const admin = database.admin;

const waitForLockWait = (sql: string, what: string) => database.waitForLockWait(sql, what);

/** A store with `hello` deployed, whose lane's ids it has cached by running one task through. */
async function storeWithLaneKnown(schema: string, nodeId?: string): Promise<PostgresStore> {
  const store = await openStore(schema, nodeId);
  await deployHello(store);
  await store.enqueueTasks([newTask()]);
  const [claimed] = await store.claimTasks(lane, 1, at(1));
  await store.finishAttempts([
    {
      taskId: claimed!.id,
      attempt: 1,
      startedAt: at(1),
      finishedAt: at(2),
      outcome: "succeeded",
      failure: null,
      result: "null",
      log: "",
      next: { state: "succeeded" },
    },
  ]);
  return store;
}

const projectNotFound = (error: unknown) => error instanceof KilnError && error.code === "PROJECT_NOT_FOUND";
const freshSchema = () => database.fresh();
const openStore = (schema: string, nodeId?: string) => database.openStore(schema, nodeId);
if (testDatabaseUrl !== null) await database.check();
after(() => database.close());

runStoreContract("PostgresStore", () => openStore(freshSchema()), {
  skip: skipWithoutDatabase,
  storePlanLimitsJson: async (store, plan, json) => {
    const { schema } = store as PostgresStore;
    await admin.query(`UPDATE ${schema}.plans SET limits = $1 WHERE name = $2`, [json, plan]);
  },
});

describe(
  "PostgresStore on a database shared by several nodes",
  { timeout: 30_000, skip: skipWithoutDatabase },
  () => {
    test("eight claims in flight at once, on eight connections, each get different tasks", async () => {
      const schema = freshSchema();
      const nodeId = `node-${randomUUID()}`;
      const store = await openStore(schema, nodeId);
      await deployHello(store);
      await store.enqueueTasks(Array.from({ length: 200 }, () => newTask()));
      // Hold the claims back at the table lock until all eight have reached PostgreSQL, then let them race.
      const locker = await admin.connect();
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.tasks IN SHARE MODE`);
      const claims = Promise.all(Array.from({ length: 8 }, () => store.claimTasks(lane, 40, at(1))));
      try {
        await waitFor(async () => {
          const { rows } = await admin.query<{ waiting: number }>(
            `SELECT count(DISTINCT pid)::int AS waiting FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%SKIP LOCKED%'`,
            [`kiln ${nodeId} fast`],
          );
          return rows[0]?.waiting === 8;
        }, "eight claims wait on the lock");
      } finally {
        await locker.query("COMMIT");
        locker.release();
      }
      const ids = (await claims).flat().map((task) => task.id);
      assert.equal(ids.length, 200);
      assert.equal(new Set(ids).size, 200);
    });

    test("a claim passes over queued tasks another claim has locked instead of waiting for them", async () => {
      const schema = freshSchema();
      const store = await openStore(schema);
      await deployHello(store);
      await store.enqueueTasks(Array.from({ length: 30 }, () => newTask()));
      const locker = await admin.connect();
      await locker.query("BEGIN");
      const { rows: locked } = await locker.query<{ id: string }>(
        `SELECT t.id FROM ${schema}.ready r JOIN ${schema}.tasks t ON t.seq = r.seq
           ORDER BY r.seq LIMIT 10 FOR UPDATE OF r`,
      );
      const waited = sleep(2000, "waited for the locked tasks" as const, { ref: false });
      let claimed;
      try {
        claimed = await Promise.race([store.claimTasks(lane, 100, at(1)), waited]);
      } finally {
        await locker.query("COMMIT");
        locker.release();
      }
      assert.ok(Array.isArray(claimed), "the claim returned while the rows were locked");
      assert.equal(claimed.length, 20);
      const lockedIds = new Set(locked.map((row) => row.id));
      assert.ok(claimed.every((task) => !lockedIds.has(task.id)));
      const rest = await store.claimTasks(lane, 100, at(2));
      assert.deepEqual(new Set(rest.map((task) => task.id)), lockedIds);
    });

    test("claims on two nodes never start the same task", async () => {
      const schema = freshSchema();
      const nodeA = await openStore(schema, "node-a");
      const nodeB = await openStore(schema, "node-b");
      await deployHello(nodeA);
      await nodeA.enqueueTasks(
        Array.from({ length: 1000 }, (_, i) => newTask({ priority: (i % 3) as 0 | 1 | 2 })),
      );
      const claimUntilEmpty = async (store: PostgresStore) => {
        const ids: string[] = [];
        for (;;) {
          const batch = await store.claimTasks(lane, 16, at(1), {
            order: ids.length % 64 === 0 ? "oldest" : "priority",
          });
          if (batch.length === 0) return ids;
          ids.push(...batch.map((task) => task.id));
        }
      };
      const perClaimer = await Promise.all([nodeA, nodeB, nodeA, nodeB].map(claimUntilEmpty));
      const ids = perClaimer.flat();
      assert.equal(ids.length, 1000);
      assert.equal(new Set(ids).size, 1000);
    });

    test("recovery after a restart ends only the restarting node's running tasks", async () => {
      const schema = freshSchema();
      const nodeA = await openStore(schema, "node-a");
      const nodeB = await openStore(schema, "node-b");
      await deployHello(nodeA);
      await nodeA.enqueueTasks([newTask(), newTask()]);
      const [onA] = await nodeA.claimTasks(lane, 1, at(1));
      const [onB] = await nodeB.claimTasks(lane, 1, at(1));
      const restartedA = await openStore(schema, "node-a");
      assert.equal(await restartedA.recoverInterruptedTasks(at(2), 3), 1);
      const taskA = await nodeB.getTask(project, onA!.id);
      assert.equal(taskA?.state, "queued");
      assert.deepEqual(
        taskA?.attempts.map((attempt) => [attempt.outcome, attempt.startedAt]),
        [["lost", at(1)]],
      );
      assert.equal((await nodeB.getTask(project, onB!.id))?.state, "running");
    });

    test("one idempotency key enqueued on two nodes at once creates one task", async () => {
      const schema = freshSchema();
      const nodeA = await openStore(schema, "node-a");
      const nodeB = await openStore(schema, "node-b");
      await deployHello(nodeA);
      for (let round = 0; round < 20; round++) {
        const key = `key-${round}`;
        const [[a], [b]] = await Promise.all([
          nodeA.enqueueTasks([newTask({ idempotencyKey: key })]),
          nodeB.enqueueTasks([newTask({ idempotencyKey: key })]),
        ]);
        assert.equal(a?.task.id, b?.task.id);
        assert.equal(Number(a?.created) + Number(b?.created), 1);
      }
      assert.equal((await nodeA.listTasks({ project, limit: 100 })).tasks.length, 20);
    });

    test("a revision archive deployed through one node is read back byte for byte on another", async () => {
      const schema = freshSchema();
      const nodeA = await openStore(schema, "node-a");
      const nodeB = await openStore(schema, "node-b");
      const archive = new Uint8Array(300_000).map((_, i) => (i * 7919) % 256);
      await deployHello(nodeA, archive);
      assert.deepEqual(new Uint8Array((await nodeB.getRevisionArchive(lane.revision))!), archive);
      assert.equal(await nodeB.getRevisionArchive("f".repeat(64)), null);
    });

    test("nodes opening a new schema at once apply each migration once", async () => {
      const schema = freshSchema();
      await Promise.all(["node-a", "node-b", "node-c", "node-d"].map((node) => openStore(schema, node)));
      const { rows } = await admin.query<{ version: number; name: string }>(
        `SELECT version, name FROM ${schema}.kiln_migrations ORDER BY version`,
      );
      assert.deepEqual(
        rows.map((row) => row.name),
        migrations.map((migration) => migration.name),
      );
    });

    test("an enqueue into a project being deleted waits for the deletion, then is refused and stores nothing", async () => {
      const schema = freshSchema();
      const store = await storeWithLaneKnown(schema);
      // The deletion is held back at its tokens, with the project locked and its lanes deleted.
      const locker = await admin.connect();
      let deletion: Promise<unknown> = Promise.resolve();
      let enqueue: Promise<unknown> = Promise.resolve();
      try {
        await locker.query("BEGIN");
        await locker.query(`LOCK TABLE ${schema}.tokens IN ACCESS EXCLUSIVE MODE`);
        deletion = store.deleteProject(project);
        await waitForLockWait("DELETE FROM tokens", "the deletion waits for the tokens");
        enqueue = store.enqueueTasks([newTask()]).catch((error: unknown) => error);
        await waitForLockWait("FOR KEY SHARE OF p", "the enqueue waits for the project");
      } finally {
        await locker.query("COMMIT");
        locker.release();
      }
      assert.deepEqual(await deletion, { deleted: true });
      assert.ok(projectNotFound(await enqueue), "the enqueue is refused");
      const { rows } = await admin.query<{ tasks: number; lanes: number }>(
        `SELECT (SELECT count(*)::int FROM ${schema}.tasks) AS tasks, (SELECT count(*)::int FROM ${schema}.lanes) AS lanes`,
      );
      assert.deepEqual(rows[0], { tasks: 0, lanes: 0 });
    });

    test("a deletion of a project waits for an enqueue into it in flight, then counts its task and refuses", async () => {
      const schema = freshSchema();
      const store = await storeWithLaneKnown(schema);
      // The enqueue is held back at its idempotency key, which an uncommitted task holds.
      const locker = await admin.connect();
      let enqueue: Promise<unknown> = Promise.resolve();
      let deletion: Promise<unknown> = Promise.resolve();
      const task = newTask({ idempotencyKey: "k" });
      try {
        await locker.query("BEGIN");
        await locker.query(
          `INSERT INTO ${schema}.tasks (id, project, lane_id, state, priority, idempotency_key, timeout_s, created_at, run_at)
             VALUES ('blocker', $1, 0, 'succeeded', 0, 'k', 60, 0, 0)`,
          [project],
        );
        enqueue = store.enqueueTasks([task]);
        await waitForLockWait("FOR KEY SHARE OF p", "the enqueue waits for the key");
        deletion = store.deleteProject(project);
        await waitForLockWait("FOR UPDATE", "the deletion waits for the enqueue");
      } finally {
        await locker.query("ROLLBACK");
        locker.release();
      }
      assert.equal(((await enqueue) as { created: boolean }[])[0]?.created, true);
      assert.deepEqual(await deletion, { deleted: false, reason: "unfinished_tasks", unfinishedTasks: 1 });
      assert.equal((await store.getTask(project, task.id))?.state, "queued");
    });

    test("a retry, a deploy and a token into a project being deleted wait for the deletion and are refused", async () => {
      const schema = freshSchema();
      const store = await storeWithLaneKnown(schema);
      const [finished] = (await store.listTasks({ project, limit: 1 })).tasks;
      // The deletion is held back after its count, before it deletes the tasks.
      const locker = await admin.connect();
      let deletion: Promise<unknown> = Promise.resolve();
      let writes: Promise<unknown[]> = Promise.resolve([]);
      try {
        await locker.query("BEGIN");
        await locker.query(`LOCK TABLE ${schema}.task_payloads IN ACCESS EXCLUSIVE MODE`);
        deletion = store.deleteProject(project);
        await waitForLockWait("DELETE FROM task_payloads", "the deletion waits for the payloads");
        writes = Promise.all([
          store.requeueFinishedTask(project, finished!.id, at(5)),
          deployHello(store).catch((error: unknown) => error),
          store.createToken({
            id: "tok_late",
            name: "late",
            digest: Buffer.alloc(32, 7),
            scope: { kind: "project", project, role: "read" },
            createdAt: at(5),
            expiresAt: null,
          }),
        ]);
        await waitForLockWait("WITH live AS", "the retry waits for the project");
        await waitForLockWait("SELECT 1 FROM projects WHERE name = $1 FOR KEY SHARE", "the deploy waits");
        await waitForLockWait("INSERT INTO tokens", "the token waits for the project");
      } finally {
        await locker.query("COMMIT");
        locker.release();
      }
      assert.deepEqual(await deletion, { deleted: true });
      const [requeued, deployed, created] = await writes;
      assert.equal(requeued, null, "the retry found no task");
      assert.ok(projectNotFound(deployed), "the deploy is refused");
      assert.equal(created, false, "the token is refused");
      const { rows } = await admin.query<{ count: number }>(
        `SELECT ((SELECT count(*) FROM ${schema}.tasks) + (SELECT count(*) FROM ${schema}.functions)
              + (SELECT count(*) FROM ${schema}.tokens) + (SELECT count(*) FROM ${schema}.projects))::int AS count`,
      );
      assert.equal(rows[0]?.count, 0, "nothing of the project is left");
    });

    test("a node whose lane ids went stale when another node deleted and re-created the project enqueues and claims anew", async () => {
      const schema = freshSchema();
      const nodeB = await storeWithLaneKnown(schema, "node-b");
      const nodeA = await openStore(schema, "node-a");
      assert.deepEqual(await nodeA.deleteProject(project), { deleted: true });
      await deployHello(nodeA);
      const task = newTask();
      assert.equal((await nodeB.enqueueTasks([task]))[0]?.created, true);
      assert.equal((await nodeA.getTask(project, task.id))?.state, "queued");
      assert.deepEqual(
        (await nodeB.claimTasks(lane, 5, at(3))).map((claimed) => claimed.id),
        [task.id],
      );
    });

    test("keeps payload JSON text as written, dates to the millisecond, and NUL in a log as U+FFFD", async () => {
      const store = await openStore(freshSchema());
      await deployHello(store);
      const payload = '{"b":1, "a":[2.50,"\\u0000"]}';
      const [created] = await store.enqueueTasks([newTask({ payload, createdAt: at(1), runAt: at(1) })]);
      assert.deepEqual(created?.task.createdAt, new Date("2026-01-01T00:00:00.124Z"));
      const [claimed] = await store.claimTasks(lane, 1, at(7));
      assert.equal(claimed?.payload, payload);
      await store.finishAttempts([
        {
          taskId: claimed.id,
          attempt: 1,
          startedAt: at(7),
          finishedAt: at(9),
          outcome: "succeeded",
          failure: null,
          result: "null",
          log: "a\u0000b",
          next: { state: "succeeded" },
        },
      ]);
      const task = await store.getTask(project, claimed.id);
      assert.deepEqual([task?.startedAt, task?.finishedAt, task?.startLatencyMs], [at(7), at(9), 6]);
      assert.equal(await store.getTaskLog(project, claimed.id), "a\uFFFDb");
    });
  },
);
