/** The `PlanCatalog` part of the `Store` contract: plans, and projects put on them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { noLimits } from "../../domain/plan.js";
import type { Store } from "../store.js";
import { at } from "./contract-fixtures.js";

const small = { maxMemoryMb: 256, maxTimeoutS: 60, maxPayloadBytes: null };

/**
 * Overwrites the plan's stored limits with `json` as it stands, through the adapter's own database
 * handle: what an older version of Kiln, which knew fewer limits, would have written.
 */
export type StorePlanLimitsJson = (store: Store, plan: string, json: string) => Promise<void>;

export function runPlanCatalogContract(
  makeStore: () => Promise<Store>,
  storePlanLimitsJson?: StorePlanLimitsJson,
): void {
  test("creates, reads, lists by name and updates plans; creating a name again changes nothing", async () => {
    const store = await makeStore();
    const created = await store.createPlan("small", small, at(1));
    assert.deepEqual(created, { name: "small", limits: small, createdAt: at(1), updatedAt: at(1) });
    assert.deepEqual(await store.getPlan("small"), created);
    await store.createPlan("big", noLimits, at(2));
    assert.equal(await store.createPlan("small", noLimits, at(3)), null);
    assert.deepEqual(await store.getPlan("small"), created, "the second create changed the plan");
    assert.deepEqual(
      (await store.listPlans()).map((plan) => plan.name),
      ["big", "small"],
    );
    // Replaced whole: a limit left out (null) is no longer set, rather than kept.
    const updated = await store.updatePlan("small", { ...small, maxTimeoutS: null }, at(4));
    const expected = {
      name: "small",
      limits: { ...small, maxTimeoutS: null },
      createdAt: at(1),
      updatedAt: at(4),
    };
    assert.deepEqual(updated, expected);
    assert.deepEqual(await store.getPlan("small"), expected);
    assert.equal(await store.updatePlan("nope", small, at(5)), null);
    assert.equal(await store.getPlan("nope"), null);
    assert.deepEqual(
      (await store.listPlans()).map((plan) => plan.name),
      ["big", "small"],
      "updating a plan that does not exist created it",
    );
    await store.close();
  });

  test("puts a project on a plan and takes it off again, and answers for a project or plan that does not exist", async () => {
    const store = await makeStore();
    await store.createPlan("small", small, at(1));
    await store.createProject("shop", "the shop", at(1));
    await store.createProject("blog", "", at(1));
    const put = await store.setProjectPlan("shop", "small", at(2));
    const onSmall = {
      name: "shop",
      description: "the shop",
      plan: "small",
      createdAt: at(1),
      updatedAt: at(2),
    };
    assert.deepEqual(put, onSmall);
    assert.deepEqual(await store.getProject("shop"), onSmall);
    assert.deepEqual(await store.planOfProject("shop"), await store.getPlan("small"));
    assert.equal((await store.planOfProject("shop"))?.name, "small");
    assert.equal(await store.planOfProject("blog"), null, "a project on no plan");
    assert.equal(await store.planOfProject("nope"), null, "a project that does not exist");

    assert.equal(await store.setProjectPlan("shop", "nope", at(3)), "plan_not_found");
    assert.deepEqual(await store.getProject("shop"), onSmall, "a refused change changed the project");
    assert.equal(await store.setProjectPlan("nope", "small", at(3)), "project_not_found");
    assert.equal(await store.setProjectPlan("nope", "none", at(3)), "project_not_found");
    assert.equal(await store.setProjectPlan("nope", null, at(3)), "project_not_found");
    assert.equal(await store.getProject("nope"), null);

    const cleared = await store.setProjectPlan("shop", null, at(4));
    assert.deepEqual(cleared, { ...onSmall, plan: null, updatedAt: at(4) });
    assert.deepEqual(await store.getProject("shop"), cleared);
    assert.equal(await store.planOfProject("shop"), null);
    assert.ok((await store.getPlan("small")) !== null, "taking a project off a plan deleted the plan");
    await store.close();
  });

  test("lists the projects on a plan by name, and refuses to delete a plan while a project is on it", async () => {
    const store = await makeStore();
    await store.createPlan("small", small, at(1));
    await store.createPlan("big", noLimits, at(1));
    for (const name of ["shop", "blog", "wiki"]) await store.createProject(name, "", at(1));
    await store.setProjectPlan("shop", "small", at(2));
    await store.setProjectPlan("blog", "small", at(2));
    await store.setProjectPlan("wiki", "big", at(2));
    assert.deepEqual(await store.listProjectsOnPlan("small"), ["blog", "shop"]);
    assert.deepEqual(await store.listProjectsOnPlan("big"), ["wiki"]);
    assert.deepEqual(await store.listProjectsOnPlan("nope"), []);

    assert.equal(await store.deletePlan("small"), "in_use");
    await store.setProjectPlan("shop", null, at(3));
    assert.equal(await store.deletePlan("small"), "in_use", "a project is still on it");
    assert.deepEqual(await store.getPlan("small"), {
      name: "small",
      limits: small,
      createdAt: at(1),
      updatedAt: at(1),
    });
    assert.deepEqual(await store.listProjectsOnPlan("small"), ["blog"]);

    // A project on a plan can be deleted; the plan stays, and is then free to delete.
    assert.deepEqual(await store.deleteProject("blog"), { deleted: true });
    assert.equal(await store.getProject("blog"), null);
    assert.equal((await store.getPlan("small"))?.name, "small", "deleting a project deleted its plan");
    assert.deepEqual(await store.listProjectsOnPlan("small"), []);
    assert.equal(await store.deletePlan("small"), "deleted");
    assert.equal(await store.getPlan("small"), null);
    assert.equal(await store.deletePlan("small"), "not_found");
    assert.equal(await store.setProjectPlan("shop", "small", at(4)), "plan_not_found");

    // Moving a project from one plan to another frees the first.
    await store.createPlan("small", small, at(5));
    await store.setProjectPlan("wiki", "small", at(6));
    assert.equal(await store.deletePlan("big"), "deleted");
    assert.equal((await store.getProject("wiki"))?.plan, "small");
    assert.deepEqual(
      (await store.listPlans()).map((plan) => plan.name),
      ["small"],
    );
    await store.close();
  });

  test(
    "a limit the stored limits lack (written by an older version) reads as not set",
    { skip: storePlanLimitsJson === undefined ? "the adapter's test gives no database handle" : false },
    async () => {
      const store = await makeStore();
      await store.createPlan("old", small, at(1));
      await store.createProject("shop", "", at(1));
      await store.setProjectPlan("shop", "old", at(2));
      await storePlanLimitsJson!(store, "old", JSON.stringify({ maxMemoryMb: 128 }));
      const expected = { maxMemoryMb: 128, maxTimeoutS: null, maxPayloadBytes: null };
      assert.deepEqual((await store.getPlan("old"))?.limits, expected);
      assert.deepEqual((await store.listPlans())[0]?.limits, expected);
      assert.deepEqual((await store.planOfProject("shop"))?.limits, expected);
      await storePlanLimitsJson!(store, "old", "{}");
      assert.deepEqual((await store.getPlan("old"))?.limits, noLimits);
      await store.close();
    },
  );
}
