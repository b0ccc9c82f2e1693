/**
 * Tokens kept in the store and what each may do: roles within a project, admin-only routes, revocation
 * and expiry, and the rule that a token of one project learns nothing of another — checked on every
 * route the OpenAPI document lists, so a new route cannot forget it.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import type { InjectOptions } from "fastify";
import { callApi, deploySleeper, startTestNode, type TestNode } from "./test-node.js";

let testNode: TestNode;

const call = (token: string, options: InjectOptions) => callApi(testNode.node, options, token);
const admin = (options: InjectOptions) => callApi(testNode.node, options);

async function createProject(name: string): Promise<void> {
  const created = await admin({ method: "POST", url: "/v1/projects", payload: { name } });
  assert.equal(created.status, 201, created.body);
}

async function deploy(project: string, name: string): Promise<void> {
  const deployed = await deploySleeper(testNode, project, name, { paused: true });
  assert.equal(deployed.status, 201, deployed.body);
}

async function createToken(body: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const created = await admin({ method: "POST", url: "/v1/tokens", payload: { name: "t", ...body } });
  assert.equal(created.status, 201, created.body);
  const answer = created.json<{ token: { id: string }; secret: string }>();
  return { id: answer.token.id, secret: answer.secret };
}

before(async () => {
  testNode = await startTestNode("access");
  await createProject("alpha");
  await createProject("beta");
  await deploy("alpha", "greet");
  await deploy("beta", "beta-secret-fn");
});

after(() => testNode.close());

describe("roles within a project", () => {
  test("read lists and reads; run also creates and cancels tasks; deploy also changes functions", async () => {
    const read = await createToken({ role: "read", project: "alpha" });
    const run = await createToken({ role: "run", project: "alpha" });
    const deployer = await createToken({ role: "deploy", project: "alpha" });
    const createTask = {
      method: "POST" as const,
      url: "/v1/projects/alpha/tasks",
      payload: { function: "greet" },
    };
    const pause = {
      method: "PATCH" as const,
      url: "/v1/projects/alpha/functions/greet",
      payload: { retries: 2 },
    };

    assert.equal((await call(read.secret, { url: "/v1/projects/alpha/functions" })).status, 200);
    const refused = await call(read.secret, createTask);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /role 'read' cannot do this; it needs role 'run' or 'deploy'/);

    const created = await call(run.secret, createTask);
    assert.equal(created.status, 201, created.body);
    const { task } = created.json<{ task: { id: string } }>();
    assert.equal((await call(run.secret, pause)).status, 403);
    const cancelled = await call(run.secret, {
      method: "POST",
      url: `/v1/projects/alpha/tasks/${task.id}/cancel`,
    });
    assert.equal(cancelled.status, 200, cancelled.body);

    const changed = await call(deployer.secret, pause);
    assert.equal(changed.status, 200, changed.body);
    assert.equal(changed.json<{ retries: number }>().retries, 2);
  });

  test("a project token cannot manage projects, tokens or nodes, and lists only its own project", async () => {
    const deployer = await createToken({ role: "deploy", project: "alpha" });
    for (const options of [
      { method: "POST", url: "/v1/projects", payload: { name: "gamma" } },
      { method: "PATCH", url: "/v1/projects/alpha", payload: { description: "x" } },
      { method: "DELETE", url: "/v1/projects/alpha" },
      { method: "POST", url: "/v1/tokens", payload: { name: "x", role: "admin" } },
      { method: "GET", url: "/v1/tokens" },
      { method: "GET", url: "/v1/nodes" },
    ] as const) {
      const answer = await call(deployer.secret, options);
      assert.equal(answer.status, 403, `${options.method} ${options.url}: ${answer.body}`);
    }
    const listed = await call(deployer.secret, { url: "/v1/projects" });
    assert.deepEqual(
      listed.json<{ projects: { name: string }[] }>().projects.map((project) => project.name),
      ["alpha"],
    );
    const shown = await call(deployer.secret, { url: "/v1/projects/alpha" });
    assert.deepEqual(shown.json<{ usage: unknown }>().usage, { functions: 1, unfinishedTasks: 0 });
  });

  test("a stored admin token may do what the bootstrap token may", async () => {
    const stored = await createToken({ role: "admin" });
    const listed = await call(stored.secret, { url: "/v1/tokens" });
    assert.equal(listed.status, 200, listed.body);
    assert.equal((await call(stored.secret, { url: "/v1/projects/beta/functions" })).status, 200);
  });
});

describe("a token's life", () => {
  test("its secret is shown once; the listing has its last use but never the secret", async () => {
    const token = await createToken({ role: "read", project: "alpha", name: "ci reader" });
    assert.match(token.secret, /^kiln_t_[A-Za-z0-9_-]{43}$/);
    assert.equal((await call(token.secret, { url: "/v1/projects/alpha" })).status, 200);
    // Last use is written after the answer, without holding the request up.
    const started = Date.now();
    let listing;
    let mine;
    for (;;) {
      listing = await admin({ url: "/v1/tokens?project=alpha" });
      const { tokens } = listing.json<{
        tokens: { id: string; name: string; lastUsedAt: string | null }[];
      }>();
      mine = tokens.find((candidate) => candidate.id === token.id);
      if (mine?.lastUsedAt !== null || Date.now() - started > 2000) break;
      // (`inject` answers without leaving the microtask queue: let the store's commit run.)
      await sleep(20);
    }
    assert.ok(!listing.body.includes(token.secret), "a listing shows a token's secret");
    assert.equal(mine?.name, "ci reader");
    assert.ok(mine.lastUsedAt !== null, "the token's use was not recorded");
  });

  test("a revoked token is refused with 401 within a second, and revoking again keeps the first time", async () => {
    const token = await createToken({ role: "read", project: "alpha" });
    assert.equal((await call(token.secret, { url: "/v1/projects/alpha" })).status, 200);
    const revoked = await admin({ method: "DELETE", url: `/v1/tokens/${token.id}` });
    assert.equal(revoked.status, 200, revoked.body);
    const first = revoked.json<{ revokedAt: string }>().revokedAt;
    const started = Date.now();
    let refused;
    for (;;) {
      refused = await call(token.secret, { url: "/v1/projects/alpha" });
      if (refused.status !== 200 || Date.now() - started > 2000) break;
      await sleep(20);
    }
    assert.equal(refused.status, 401);
    assert.ok(Date.now() - started < 1000, `refused only after ${Date.now() - started} ms`);
    assert.match(refused.body, /was revoked/);
    const again = await admin({ method: "DELETE", url: `/v1/tokens/${token.id}` });
    assert.equal(again.json<{ revokedAt: string }>().revokedAt, first);
    assert.equal((await admin({ method: "DELETE", url: "/v1/tokens/tok_nope" })).status, 404);
  });

  test("an expired token is refused, saying when it expired", async () => {
    const now = new Date();
    const { createHash } = await import("node:crypto");
    const secret = "kiln_t_expired-for-the-test";
    await testNode.node.store.createToken({
      id: "tok_expired",
      name: "old",
      digest: createHash("sha256").update(secret).digest(),
      scope: { kind: "project", project: "alpha", role: "read" },
      createdAt: new Date(now.getTime() - 120_000),
      expiresAt: new Date(now.getTime() - 60_000),
    });
    const refused = await call(secret, { url: "/v1/projects/alpha" });
    assert.equal(refused.status, 401);
    assert.match(refused.body, /expired at/);
  });

  test("bad token requests are refused by field and change nothing", async () => {
    const before = (await admin({ url: "/v1/tokens" })).body;
    const cases = [
      [{ name: "x", role: "owner", project: "alpha" }, "role"],
      [{ name: "x", role: "read" }, "project"],
      [{ name: "x", role: "admin", project: "alpha" }, "project"],
      [{ name: "", role: "read", project: "alpha" }, "name"],
      [{ name: "x", role: "read", project: "alpha", expiresInS: 5 }, "expiresInS"],
    ] as const;
    for (const [payload, field] of cases) {
      const refused = await admin({ method: "POST", url: "/v1/tokens", payload });
      assert.equal(refused.status, 400, refused.body);
      const { error } = refused.json<{
        error: { code: string; details: { errors: { field: string }[] } };
      }>();
      assert.equal(error.code, "BAD_REQUEST");
      assert.equal(error.details.errors[0]?.field, field, refused.body);
    }
    const unknownProject = await admin({
      method: "POST",
      url: "/v1/tokens",
      payload: { name: "x", role: "read", project: "nope" },
    });
    assert.equal(unknownProject.status, 404);
    assert.equal((await admin({ url: "/v1/tokens" })).body, before);
  });
});

test("a token of another project learns nothing on any route of the OpenAPI document: never a 2xx about that project, never a 5xx, never one of its names or ids", async () => {
  const outsider = await createToken({ role: "deploy", project: "alpha" });
  const task = await admin({
    method: "POST",
    url: "/v1/projects/beta/tasks",
    payload: { function: "beta-secret-fn" },
  });
  const taskId = task.json<{ task: { id: string } }>().task.id;
  const betaToken = await createToken({ role: "read", project: "beta", name: "beta-token-name" });
  const secrets = ["beta-secret-fn", taskId, betaToken.id, "beta-token-name"];
  const document = (await admin({ url: "/openapi.json" })).json<{
    paths: Record<string, Record<string, unknown>>;
  }>();
  const values: Record<string, string> = { project: "beta", name: "beta-secret-fn", id: taskId };
  let routes = 0;
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const method of Object.keys(operations)) {
      routes += 1;
      const url = template.replace(/\{(\w+)\}/g, (_, key: string) =>
        template.startsWith("/v1/tokens") ? betaToken.id : (values[key] ?? "x"),
      );
      const answer = await call(outsider.secret, {
        method: method.toUpperCase(),
        url,
        ...(method === "get" || method === "delete" ? {} : { payload: {} }),
      });
      const where = `${method.toUpperCase()} ${url}: ${answer.status} ${answer.body}`;
      assert.ok(answer.status < 500, where);
      if (template.includes("{project}")) assert.ok(answer.status >= 400, where);
      for (const secret of secrets) assert.ok(!answer.body.includes(secret), `${where} leaks ${secret}`);
    }
  }
  assert.ok(routes >= 20, `the OpenAPI document lists only ${routes} routes`);
  // Nothing of beta was changed by all of that.
  const still = await admin({ url: `/v1/projects/beta/tasks/${taskId}` });
  assert.equal(still.json<{ state: string }>().state, "queued");
  assert.equal((await admin({ url: "/v1/projects/beta" })).status, 200);
});
