import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { StoreWriteRefusedError } from "../store.js";
import { writeNow } from "./sqlite-errors.js";

test("a database at its size limit refuses the write as full, and nothing of it is written", async () => {
  const db = new Database(":memory:");
  db.exec("CREATE TABLE t (x TEXT)");
  db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
  const insert = db.prepare("INSERT INTO t VALUES (?)");
  const refused = await writeNow(() => db.transaction(() => insert.run("x".repeat(100_000)))()).catch(
    (error: unknown) => error,
  );
  assert.ok(refused instanceof StoreWriteRefusedError);
  assert.equal(refused.reason, "full");
  assert.match(refused.message, /is full: nothing was written/);
  assert.equal(db.prepare("SELECT count(*) FROM t").pluck().get(), 0);
  db.close();
});

test("a database opened read-only refuses the write as read-only", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-sqlite-errors-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, "x.db");
  new Database(file).exec("CREATE TABLE t (x TEXT)");
  const db = new Database(file, { readonly: true });
  const refused = await writeNow(() => db.prepare("INSERT INTO t VALUES ('x')").run()).catch(
    (error: unknown) => error,
  );
  assert.ok(refused instanceof StoreWriteRefusedError);
  assert.equal(refused.reason, "read_only");
  db.close();
});

test("any other error passes through as it is", async () => {
  const db = new Database(":memory:");
  await assert.rejects(
    writeNow(() => db.prepare("INSERT INTO missing VALUES (1)").run()),
    (error: unknown) => !(error instanceof StoreWriteRefusedError) && /no such table/.test(String(error)),
  );
  db.close();
});
