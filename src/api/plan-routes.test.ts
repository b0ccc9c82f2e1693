/**
 * Plans through the API: limits kept with a name, projects put on them, and the settings and tasks of
 * those projects held to them — at deploy, at a change of settings, at task creation and invoke.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import { callApi, deploySleeper, startTestNode, type TestNode } from "./test-node.js";

let testNode: TestNode;

const admin = (options: InjectOptions) => callApi(testNode.node, options);

interface ErrorBody {
  error: { code: string; message: string; details: { errors?: { field: string; message: string }[] } };
}

const deploy = (project: string, name: string, manifest: object) =>
  deploySleeper(testNode, project, name, { paused: true, ...manifest });

before(async () => {
  testNode = await startTestNode("plans");
  await admin({ method: "POST", url: "/v1/projects", payload: { name: "free-team" } });
});

after(() => testNode.close());

test("a plan is created once, listed, shown with its projects, changed and deleted when no project is on it", async () => {
  const created = await admin({
    method: "POST",
    url: "/v1/plans",
    payload: { name: "starter", maxMemoryMb: 512 },
  });
  assert.equal(created.status, 201, created.body);
  assert.deepEqual(
    { ...created.json<Record<string, unknown>>(), createdAt: "", updatedAt: "" },
    {
      name: "starter",
      maxMemoryMb: 512,
      maxTimeoutS: null,
      maxPayloadBytes: null,
      createdAt: "",
      updatedAt: "",
    },
  );
  assert.equal((await admin({ method: "POST", url: "/v1/plans", payload: { name: "starter" } })).status, 409);
  const listed = await admin({ url: "/v1/plans" });
  assert.deepEqual(
    listed.json<{ plans: { name: string }[] }>().plans.map((plan) => plan.name),
    ["starter"],
  );

  await admin({ method: "POST", url: "/v1/projects", payload: { name: "on-starter" } });
  const put = await admin({ method: "PATCH", url: "/v1/projects/on-starter", payload: { plan: "starter" } });
  assert.equal(put.status, 200, put.body);
  assert.equal(put.json<{ plan: string }>().plan, "starter");
  assert.deepEqual((await admin({ url: "/v1/plans/starter" })).json<{ projects: string[] }>().projects, [
    "on-starter",
  ]);
  const shown = await admin({ url: "/v1/projects/on-starter" });
  assert.equal(shown.json<{ limits: { maxMemoryMb: number } }>().limits.maxMemoryMb, 512);

  const inUse = await admin({ method: "DELETE", url: "/v1/plans/starter" });
  assert.equal(inUse.status, 409, inUse.body);
  assert.equal(inUse.json<ErrorBody>().error.code, "PLAN_IN_USE");
  const changed = await admin({
    method: "PATCH",
    url: "/v1/plans/starter",
    payload: { maxMemoryMb: null, maxTimeoutS: 30 },
  });
  assert.equal(changed.json<{ maxMemoryMb: null; maxTimeoutS: number }>().maxTimeoutS, 30);
  assert.equal(changed.json<{ maxMemoryMb: null }>().maxMemoryMb, null);
  await admin({ method: "PATCH", url: "/v1/projects/on-starter", payload: { plan: null } });
  assert.equal((await admin({ method: "DELETE", url: "/v1/plans/starter" })).status, 204);
  assert.equal((await admin({ url: "/v1/plans/starter" })).status, 404);
  const unknown = await admin({ method: "PATCH", url: "/v1/projects/on-starter", payload: { plan: "nope" } });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json<ErrorBody>().error.code, "PLAN_NOT_FOUND");
});

test("bad plan input is refused by field", async () => {
  for (const [payload, field] of [
    [{ name: "x", maxMemoryMb: 10 }, "maxMemoryMb"],
    [{ name: "x", maxTimeoutS: 0 }, "maxTimeoutS"],
    [{ name: "x", maxPayloadBytes: "big" }, "maxPayloadBytes"],
    [{ name: "x", maxTasks: 3 }, "maxTasks"],
  ] as const) {
    const refused = await admin({ method: "POST", url: "/v1/plans", payload });
    assert.equal(refused.status, 400, refused.body);
    assert.equal(refused.json<ErrorBody>().error.details.errors?.[0]?.field, field, refused.body);
  }
  assert.equal((await admin({ url: "/v1/plans/x" })).status, 404);
});

test("a project on a plan cannot deploy, set or run anything over its limits, and nothing is changed by a refusal", async () => {
  await admin({
    method: "POST",
    url: "/v1/plans",
    payload: { name: "small", maxMemoryMb: 256, maxTimeoutS: 60, maxPayloadBytes: 100 },
  });
  const big = await deploy("free-team", "big", { memoryMb: 1024 });
  assert.equal(big.status, 201, big.body);
  const refusedPlan = await admin({
    method: "PATCH",
    url: "/v1/projects/free-team",
    payload: { plan: "small" },
  });
  assert.equal(refusedPlan.status, 400, refusedPlan.body);
  assert.match(
    refusedPlan.json<ErrorBody>().error.message,
    /function 'big' of project 'free-team' has memoryMb 1024/,
  );
  assert.equal((await admin({ url: "/v1/projects/free-team" })).json<{ plan: null }>().plan, null);

  assert.equal(
    (
      await admin({
        method: "PATCH",
        url: "/v1/projects/free-team/functions/big",
        payload: { memoryMb: 256 },
      })
    ).status,
    200,
  );
  assert.equal(
    (await admin({ method: "PATCH", url: "/v1/projects/free-team", payload: { plan: "small" } })).status,
    200,
  );

  const overDeploy = await deploy("free-team", "big", { memoryMb: 512 });
  assert.equal(overDeploy.status, 400, overDeploy.body);
  assert.equal(overDeploy.json<ErrorBody>().error.code, "OVER_PLAN_LIMIT");
  assert.match(
    overDeploy.json<ErrorBody>().error.message,
    /kiln\.json memoryMb 512 is over the limit of plan 'small' \(at most 256\)/,
  );
  const overPatch = await admin({
    method: "PATCH",
    url: "/v1/projects/free-team/functions/big",
    payload: { timeoutS: 61 },
  });
  assert.equal(overPatch.status, 400, overPatch.body);
  assert.equal(overPatch.json<ErrorBody>().error.details.errors?.[0]?.field, "timeoutS");
  const fn = (await admin({ url: "/v1/projects/free-team/functions/big" })).json<{
    memoryMb: number;
    timeoutS: number;
  }>();
  assert.deepEqual([fn.memoryMb, fn.timeoutS], [256, 60], "a refused change changed the function");

  const overTimeout = await admin({
    method: "POST",
    url: "/v1/projects/free-team/tasks",
    payload: { tasks: [{ function: "big" }, { function: "big", timeoutS: 120 }] },
  });
  assert.equal(overTimeout.status, 400, overTimeout.body);
  assert.equal(overTimeout.json<ErrorBody>().error.details.errors?.[0]?.field, "tasks[1].timeoutS");
  const overPayload = await admin({
    method: "POST",
    url: "/v1/projects/free-team/tasks",
    payload: { function: "big", payload: "x".repeat(200) },
  });
  assert.equal(overPayload.status, 413, overPayload.body);
  assert.match(overPayload.json<ErrorBody>().error.message, /over the limit of plan 'small' of 100/);
  const invoked = await admin({
    method: "POST",
    url: "/v1/projects/free-team/functions/big/invoke?timeoutS=61",
    headers: { "content-type": "application/json" },
    payload: "1",
  });
  assert.equal(invoked.status, 400, invoked.body);
  const tasks = (await admin({ url: "/v1/projects/free-team/tasks" })).json<{ tasks: unknown[] }>().tasks;
  assert.deepEqual(tasks, [], "a refused task was created");

  const lowered = await admin({ method: "PATCH", url: "/v1/plans/small", payload: { maxMemoryMb: 128 } });
  assert.equal(lowered.status, 400, lowered.body);
  assert.match(
    lowered.json<ErrorBody>().error.message,
    /function 'big' of project 'free-team' has memoryMb 256/,
  );
});
