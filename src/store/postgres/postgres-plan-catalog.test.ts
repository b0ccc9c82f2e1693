/**
 * What only a shared database shows of plans: a project put on a plan and the plan's deletion at once
 * take turns (the locking argument is at the top of `postgres-plan-catalog.ts`), so no project is ever
 * left on a deleted plan. Skipped, saying so, without `KILN_TEST_DATABASE_URL`.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { noLimits } from "../../domain/plan.js";
import type { PostgresStore } from "./postgres-store.js";
import { at, skipWithoutDatabase, TestDatabase, testDatabaseUrl } from "./test-database.js";

const database = new TestDatabase(testDatabaseUrl ?? "");
if (testDatabaseUrl !== null) await database.check();
after(() => database.close());

/** A fresh schema with plan `small` and project `shop`, on no plan. */
async function storeWithPlan(): Promise<{ store: PostgresStore; schema: string }> {
  const schema = database.fresh();
  const store = await database.openStore(schema);
  await store.createPlan("small", noLimits, at(1));
  await store.createProject("shop", "", at(1));
  return { store, schema };
}

describe("PostgresStore plans on a shared database", { timeout: 30_000, skip: skipWithoutDatabase }, () => {
  test("a plan's deletion waits for a project being put on it, then finds the plan in use", async () => {
    const { store, schema } = await storeWithPlan();
    // Another node's assignment, not committed yet: its foreign key check holds the plan KEY SHARE.
    const assigner = await database.admin.connect();
    let deletion: Promise<unknown> = Promise.resolve();
    try {
      await assigner.query("BEGIN");
      await assigner.query(`UPDATE ${schema}.projects SET plan = 'small' WHERE name = 'shop'`);
      deletion = store.deletePlan("small").catch((error: unknown) => error);
      await database.waitForLockWait("FROM plans", "the deletion waits for the assignment");
    } finally {
      await assigner.query("COMMIT");
      assigner.release();
    }
    assert.equal(await deletion, "in_use");
    assert.equal((await store.getPlan("small"))?.name, "small");
    assert.equal((await store.getProject("shop"))?.plan, "small");
  });

  test("a project put on a plan being deleted waits for the deletion, then is told there is no plan", async () => {
    const { store, schema } = await storeWithPlan();
    // The deletion is held back after it locked the plan, before it looks for projects on it.
    const locker = await database.admin.connect();
    let deletion: Promise<unknown> = Promise.resolve();
    let assignment: Promise<unknown> = Promise.resolve();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.projects IN ACCESS EXCLUSIVE MODE`);
      deletion = store.deletePlan("small").catch((error: unknown) => error);
      await database.waitForLockWait("SELECT 1 FROM projects WHERE plan", "the deletion waits for projects");
      assignment = store.setProjectPlan("shop", "small", at(2)).catch((error: unknown) => error);
      await database.waitForLockWait("UPDATE projects SET plan", "the assignment waits for projects");
    } finally {
      await locker.query("COMMIT");
      locker.release();
    }
    assert.equal(await deletion, "deleted");
    assert.equal(await assignment, "plan_not_found");
    assert.equal(await store.getPlan("small"), null);
    assert.equal((await store.getProject("shop"))?.plan, null);
    assert.deepEqual(await store.listProjectsOnPlan("small"), []);
  });
});
