/** The `FunctionCatalog` part of the `Store` contract: functions, revisions and rollback. */
import assert from "node:assert/strict";
import { defaultSettings } from "../../domain/function-settings.js";
import { test } from "node:test";
import type { Store } from "../store.js";
import { project, lane, at, storeWithFunction } from "./contract-fixtures.js";

export function runFunctionCatalogContract(makeStore: () => Promise<Store>): void {
  test("deploying the same content again creates no revision; another digest does, and rollback returns", async () => {
    const store = await storeWithFunction(makeStore);
    const input = {
      project,
      name: lane.functionName,
      spec: { runtime: "node" as const, entry: ["index.js"] },
      archive: new Uint8Array([1]),
      settings: { ...defaultSettings, env: { A: "1" } },
      now: at(1),
    };
    const same = await store.deployRevision({ ...input, digest: lane.revision });
    assert.equal(same.created, false);
    const next = await store.deployRevision({
      ...input,
      digest: "b".repeat(64),
      settings: defaultSettings,
    });
    assert.equal(next.created, true);
    assert.equal(next.function.currentRevision, "b".repeat(64));
    assert.deepEqual(next.function.settings.env, { A: "1" }, "a redeploy keeps env set earlier");
    assert.equal((await store.listRevisions(project, lane.functionName)).length, 2);
    const back = await store.setCurrentRevision(project, lane.functionName, lane.revision, at(2));
    assert.equal(back?.currentRevision, lane.revision);
    assert.equal(await store.setCurrentRevision(project, lane.functionName, "c".repeat(64), at(3)), null);
    const paused = { ...back.settings, paused: true, timeoutS: 5 };
    await store.updateFunctionSettings(project, lane.functionName, paused, at(4));
    const redeployed = await store.deployRevision({
      ...input,
      digest: "d".repeat(64),
      settings: { timeoutS: 9 },
    });
    assert.equal(redeployed.function.settings.paused, true, "a setting the manifest leaves out is kept");
    assert.equal(
      redeployed.function.settings.timeoutS,
      9,
      "a setting the manifest names replaces the current one",
    );
    await store.close();
  });
}
