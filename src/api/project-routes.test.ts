/** Projects through the API: create, list, show with usage, change, and delete with what they hold. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { InjectOptions } from "fastify";
import { callApi, deploySleeper, startTestNode, type TestNode } from "./test-node.js";

let testNode: TestNode;

const admin = (options: InjectOptions) => callApi(testNode.node, options);

async function deploy(project: string, name: string, paused: boolean): Promise<void> {
  const deployed = await deploySleeper(testNode, project, name, { paused });
  assert.equal(deployed.status, 201, deployed.body);
}

before(async () => {
  testNode = await startTestNode("projects");
});

after(() => testNode.close());

test("a project is created once, listed, shown with what it holds, and its description changed", async () => {
  const created = await admin({
    method: "POST",
    url: "/v1/projects",
    payload: { name: "shop", description: "the web shop" },
  });
  assert.equal(created.status, 201, created.body);
  assert.equal(created.json<{ description: string }>().description, "the web shop");
  const again = await admin({ method: "POST", url: "/v1/projects", payload: { name: "shop" } });
  assert.equal(again.status, 409);
  assert.equal(again.json<{ error: { code: string } }>().error.code, "PROJECT_EXISTS");

  const listed = await admin({ url: "/v1/projects" });
  assert.deepEqual(
    listed.json<{ projects: { name: string }[] }>().projects.map((project) => project.name),
    ["default", "shop"],
  );
  await deploy("shop", "cart", true);
  await admin({ method: "POST", url: "/v1/projects/shop/tasks", payload: { function: "cart" } });
  const shown = await admin({ url: "/v1/projects/shop" });
  assert.deepEqual(shown.json<{ usage: unknown }>().usage, { functions: 1, unfinishedTasks: 1 });

  const changed = await admin({
    method: "PATCH",
    url: "/v1/projects/shop",
    payload: { description: "shop v2" },
  });
  assert.equal(changed.json<{ description: string }>().description, "shop v2");
  assert.equal((await admin({ method: "PATCH", url: "/v1/projects/nope", payload: {} })).status, 404);
});

test("bad project input is refused by field and creates nothing", async () => {
  for (const [payload, field] of [
    [{ name: "Has Caps" }, "name"],
    [{ name: "ok", description: "x".repeat(501) }, "description"],
    [{ name: "ok", owner: "me" }, "owner"],
  ] as const) {
    const refused = await admin({ method: "POST", url: "/v1/projects", payload });
    assert.equal(refused.status, 400, refused.body);
    const { error } = refused.json<{ error: { details: { errors: { field: string }[] } } }>();
    assert.equal(error.details.errors[0]?.field, field, refused.body);
  }
  assert.equal((await admin({ url: "/v1/projects/ok" })).status, 404);
});

test("a project with unfinished tasks is deleted only when asked to cancel them; then everything of it is gone", async () => {
  await admin({ method: "POST", url: "/v1/projects", payload: { name: "doomed" } });
  await deploy("doomed", "slow", false);
  await deploy("doomed", "held", true);
  const running = await admin({
    method: "POST",
    url: "/v1/projects/doomed/tasks",
    payload: { function: "slow", payload: { sleepMs: 60_000 } },
  });
  const runningId = running.json<{ task: { id: string } }>().task.id;
  await admin({ method: "POST", url: "/v1/projects/doomed/tasks", payload: { function: "held" } });
  const token = await admin({
    method: "POST",
    url: "/v1/tokens",
    payload: { name: "d", role: "read", project: "doomed" },
  });
  const { secret } = token.json<{ secret: string }>();

  const refused = await admin({ method: "DELETE", url: "/v1/projects/doomed" });
  assert.equal(refused.status, 409, refused.body);
  const { error } = refused.json<{ error: { code: string; details: { unfinishedTasks: number } } }>();
  assert.equal(error.code, "PROJECT_HAS_TASKS");
  assert.equal(error.details.unfinishedTasks, 2);
  assert.equal(
    (await admin({ url: `/v1/projects/doomed/tasks/${runningId}` })).status,
    200,
    "a refused delete deleted",
  );

  const deleted = await admin({ method: "DELETE", url: "/v1/projects/doomed?cancelTasks=true" });
  assert.equal(deleted.status, 204, deleted.body);
  assert.equal((await admin({ url: "/v1/projects/doomed" })).status, 404);
  assert.equal((await admin({ url: `/v1/projects/doomed/tasks/${runningId}` })).status, 404);
  const refusedToken = await testNode.node.app.inject({
    url: "/v1/projects",
    headers: { authorization: `Bearer ${secret}` },
  });
  assert.equal(refusedToken.statusCode, 401, "a deleted project's token still works");
  // The name is free again, and the new project starts empty.
  await admin({ method: "POST", url: "/v1/projects", payload: { name: "doomed" } });
  assert.deepEqual((await admin({ url: "/v1/projects/doomed" })).json<{ usage: unknown }>().usage, {
    functions: 0,
    unfinishedTasks: 0,
  });
});

test("the default project cannot be deleted", async () => {
  const refused = await admin({ method: "DELETE", url: "/v1/projects/default" });
  assert.equal(refused.status, 400, refused.body);
  assert.equal((await admin({ url: "/v1/projects/default" })).status, 200);
});

test("the callback key: the same on every read, new after a rotation, hidden from a token below deploy", async () => {
  const first = await admin({ url: "/v1/projects/default/callback-secret" });
  const { secret } = first.json<{ secret: string }>();
  assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(
    (await admin({ url: "/v1/projects/default/callback-secret" })).json<{ secret: string }>().secret,
    secret,
  );
  const rotated = await admin({ method: "POST", url: "/v1/projects/default/callback-secret/rotate" });
  const next = rotated.json<{ secret: string }>().secret;
  assert.notEqual(next, secret);
  assert.equal(
    (await admin({ url: "/v1/projects/default/callback-secret" })).json<{ secret: string }>().secret,
    next,
  );
  const run = await admin({
    method: "POST",
    url: "/v1/tokens",
    payload: { name: "r", role: "run", project: "default" },
  });
  const hidden = await testNode.node.app.inject({
    url: "/v1/projects/default/callback-secret",
    headers: { authorization: `Bearer ${run.json<{ secret: string }>().secret}` },
  });
  assert.equal(hidden.statusCode, 403, hidden.body);
  assert.ok(!hidden.body.includes(next));
});
