/**
 * The `Store` contract against PostgreSQL, plus what only a shared database shows: several nodes on one
 * schema. Each store gets a fresh schema, dropped at the end. Skipped, saying so, without
 * `KILN_TEST_DATABASE_URL` (see `test-database.ts`).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
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
const freshSchema = () => database.fresh();
const openStore = (schema: string, nodeId?: string) => database.openStore(schema, nodeId);
if (testDatabaseUrl !== null) await database.check();
after(() => database.close());

runStoreContract("PostgresStore", () => openStore(freshSchema()), { skip: skipWithoutDatabase });

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
