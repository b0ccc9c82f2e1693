/** A node that keeps its durable state in PostgreSQL instead of SQLite: the same behaviour end to end. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { skipWithoutDatabase, testDatabaseUrl } from "../../src/store/postgres/test-database.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

const databaseUrl = testDatabaseUrl ?? "";

test(
  "a node on PostgreSQL runs tasks, answers invokes, and loses nothing to kill -9",
  { timeout: 120_000, skip: skipWithoutDatabase },
  async (t) => {
    const schema = `kiln_e2e_${randomBytes(4).toString("hex")}`;
    const server = await startKilnServer({
      args: ["--database", databaseUrl],
      env: { KILN_DATABASE_SCHEMA: schema },
    });
    t.after(async () => {
      await server.stop();
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    });
    await deployTestFunction(server.client, "sleep-briefly");
    const invoked = await server.client.invoke("sleep-briefly", { n: 1, sleepMs: 1 });
    assert.equal(invoked.status, "succeeded");
    await server.client.createTasks(
      Array.from({ length: 500 }, (_, n) => ({ function: "sleep-briefly", payload: { n, sleepMs: 5 } })),
    );
    await server.kill9();
    await server.restart();
    await waitUntilNoneUnfinished(server.client, "sleep-briefly", 60_000);
    const tasks = await listAllTasks(server.client, { function: "sleep-briefly" });
    assert.equal(tasks.length, 501);
    assert.deepEqual([...new Set(tasks.map((task) => task.state))], ["succeeded"]);
  },
);
