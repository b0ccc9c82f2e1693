/**
 * Migration 003 carries a queue over: a schema at version 2 with tasks in every state (rows written as
 * the version-2 store wrote them) reads back unchanged after the migration, and every task goes on from
 * where it was (queued ones are claimed, delayed ones released, running ones recovered, pending
 * callbacks delivered).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import pg from "pg";
import { oldTaskRowsInEveryState } from "../contract/old-task-rows.js";
import { toTask } from "../rows.js";
import { migrations } from "./migrations/index.js";
import {
  at,
  lane,
  project,
  skipWithoutDatabase,
  t0,
  TestDatabase,
  testDatabaseUrl,
} from "./test-database.js";

const database = new TestDatabase(testDatabaseUrl ?? "");
if (testDatabaseUrl !== null) await database.check();
after(() => database.close());

describe("PostgreSQL migration 003", { timeout: 60_000, skip: skipWithoutDatabase }, () => {
  test("carries tasks in every state over unchanged, and each goes on from where it was", async () => {
    const schema = database.fresh();
    const admin = new pg.Client({ connectionString: database.url, options: `-c search_path=${schema}` });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.query(`CREATE TABLE kiln_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      for (const [index, migration] of migrations.slice(0, 2).entries()) {
        await admin.query(migration.up);
        await admin.query("INSERT INTO kiln_migrations (version, name) VALUES ($1, $2)", [
          index + 1,
          migration.name,
        ]);
      }
      await admin.query("INSERT INTO projects VALUES ($1, $2)", [project, t0.getTime()]);
      await admin.query("INSERT INTO archives VALUES ($1, $2)", [lane.revision, Buffer.from([1])]);
      await admin.query(
        "INSERT INTO revisions (project, function_name, digest, spec, size_bytes, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
        [project, lane.functionName, lane.revision, '{"runtime":"node","entry":["index.js"]}', t0.getTime()],
      );
      await admin.query("INSERT INTO functions VALUES ($1, $2, $3, '{}', $4, $4)", [
        project,
        lane.functionName,
        lane.revision,
        t0.getTime(),
      ]);
      const rows = oldTaskRowsInEveryState();
      for (const row of rows) {
        const columns = Object.keys(row);
        await admin.query(
          `INSERT INTO tasks (${columns.join(", ")}) OVERRIDING SYSTEM VALUE
             VALUES (${columns.map((_, i) => `$${i + 1}`).join(", ")})`,
          Object.values(row),
        );
      }

      const store = await database.openStore(schema, "node-old");
      // The later migrations run too: 005 gives the project an empty description, updated when created.
      assert.deepEqual(await store.getProject(project), {
        name: project,
        description: "",
        plan: null,
        createdAt: t0,
        updatedAt: t0,
      });
      for (const row of rows) {
        assert.deepEqual(await store.getTask(project, row.id), toTask(row), `${row.state} ${row.id}`);
        assert.equal(await store.getTaskLog(project, row.id), row.log);
      }
      const page = await store.listTasks({ project, limit: 100 });
      assert.deepEqual(
        page.tasks.map((task) => task.id),
        rows.map((row) => row.id).reverse(),
      );
      const even = await store.listTasks({ project, label: "even", state: "delayed", limit: 100 });
      assert.deepEqual(
        even.tasks.map((task) => task.id),
        rows.filter((row) => row.label === "even" && row.state === "delayed").map((row) => row.id),
      );

      // Each goes on: the queued ones are claimed in priority order, the running one is recovered
      // (its slot given back), the delayed one released, the pending callback handed out.
      const claimed = await store.claimTasks(lane, 10, at(1000), { maxConcurrency: 3 });
      assert.deepEqual(
        claimed.map((task) => task.id),
        [rows[1]!.id, rows[0]!.id],
        "the running task holds one of three slots",
      );
      assert.equal(await store.recoverInterruptedTasks(at(1001), 3), 3);
      assert.equal((await store.getTask(project, rows[3]!.id))?.state, "queued");
      assert.deepEqual(await store.releaseDueTasks(at(120_000)), [lane]);
      assert.equal((await store.claimTasks(lane, 10, at(120_001), { maxConcurrency: 3 })).length, 3);
      const callbacks = await store.claimDueCallbacks(at(1000), 10, 1000);
      assert.deepEqual(
        callbacks.map(({ task, url, attempts }) => [task.id, url, attempts]),
        [[rows[5]!.id, "http://x/failed", 2]],
      );
      const { rows: versions } = await admin.query<{ version: number }>(
        "SELECT version FROM kiln_migrations ORDER BY version",
      );
      assert.deepEqual(
        versions.map((row) => row.version),
        migrations.map((_, i) => i + 1),
      );
    } finally {
      await admin.end();
    }
  });
});
