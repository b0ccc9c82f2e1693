/**
 * Migration 005 carries a queue over: a database at version 4 with tasks in every state (rows written as
 * the version-4 store wrote them) reads back unchanged after the migration, and every task goes on from
 * where it was.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { at, lane, project, t0 } from "../contract/contract-fixtures.js";
import { oldTaskRowsInEveryState } from "../contract/old-task-rows.js";
import { toTask } from "../rows.js";
import { migrations } from "./migrations/index.js";
import { SqliteStore } from "./sqlite-store.js";

test("SQLite migration 005 carries tasks in every state over unchanged, and each goes on from where it was", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kiln-migration-005-"));
  try {
    const file = path.join(dir, "kiln.db");
    const old = new Database(file);
    for (const migration of migrations.slice(0, 4)) old.exec(migration.up);
    old.pragma("user_version = 4");
    old.prepare("INSERT INTO projects VALUES (?, ?)").run(project, t0.getTime());
    old.prepare("INSERT INTO archives VALUES (?, ?)").run(lane.revision, Buffer.from([1]));
    old
      .prepare("INSERT INTO revisions VALUES (?, ?, ?, ?, 1, ?)")
      .run(
        project,
        lane.functionName,
        lane.revision,
        '{"runtime":"node","entry":["index.js"]}',
        t0.getTime(),
      );
    old
      .prepare("INSERT INTO functions VALUES (?, ?, ?, '{}', ?, ?)")
      .run(project, lane.functionName, lane.revision, t0.getTime(), t0.getTime());
    const rows = oldTaskRowsInEveryState();
    for (const row of rows) {
      // SQLite's schema never had these two (one node; waiters are local)
      const { node_id: _node, awaited: _awaited, ...columns } = row;
      const names = Object.keys(columns);
      old
        .prepare(`INSERT INTO tasks (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`)
        .run(...Object.values(columns));
    }
    old.close();

    const store = new SqliteStore({ path: file, maxLogChars: 1000 });
    try {
      // Migration 006 runs too: the project gets an empty description, updated when it was created.
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
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
