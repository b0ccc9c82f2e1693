/** The project, callback key, token and plan methods against a fake fetch: the request each sends, the answer it gives. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ApiToken, Plan, Project } from "./api-types.js";
import { createClient } from "./client.js";
import { createFakeFetch, describeRequest } from "./fake-fetch.js";
import { KilnApiError } from "./kiln-api-error.js";

const plan: Plan = {
  name: "small",
  maxMemoryMb: 256,
  maxTimeoutS: 60,
  maxPayloadBytes: null,
  createdAt: "2025-03-01T12:00:00.000Z",
  updatedAt: "2025-03-02T12:00:00.000Z",
};

const project: Project = {
  name: "shop",
  description: "the web shop",
  plan: "small",
  createdAt: "2025-03-01T12:00:00.000Z",
  updatedAt: "2025-03-02T12:00:00.000Z",
};

const token: ApiToken = {
  id: "tok_1",
  name: "ci",
  role: "deploy",
  project: "shop",
  createdAt: "2025-03-01T12:00:00.000Z",
  expiresAt: null,
  lastUsedAt: null,
  revokedAt: null,
};

test("the project methods call the project routes and resolve with the parsed answers", async () => {
  const withUsage = { ...project, limits: plan, usage: { functions: 2, unfinishedTasks: 5 } };
  const { fetch, seen } = createFakeFetch((request) => {
    if (request.url.pathname === "/v1/projects") {
      return request.method === "GET" ? { body: { projects: [project] } } : { status: 201, body: project };
    }
    return { body: request.method === "GET" ? withUsage : project };
  });
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "shop", fetch });
  assert.deepEqual(await client.listProjects(), [project]);
  assert.deepEqual(await client.createProject("shop", { description: "the web shop" }), project);
  assert.deepEqual(await client.createProject("bare"), project);
  assert.deepEqual(await client.getProject(), withUsage);
  await client.getProject("other team");
  assert.deepEqual(await client.updateProject("shop", { description: "d" }), project);
  await client.updateProject("shop", { plan: "small" });
  await client.updateProject("shop", { plan: null });
  assert.deepEqual(seen.map(describeRequest), [
    { method: "GET", path: "/v1/projects", query: {}, body: undefined },
    { method: "POST", path: "/v1/projects", query: {}, body: { name: "shop", description: "the web shop" } },
    { method: "POST", path: "/v1/projects", query: {}, body: { name: "bare" } },
    { method: "GET", path: "/v1/projects/shop", query: {}, body: undefined },
    { method: "GET", path: "/v1/projects/other%20team", query: {}, body: undefined },
    { method: "PATCH", path: "/v1/projects/shop", query: {}, body: { description: "d" } },
    { method: "PATCH", path: "/v1/projects/shop", query: {}, body: { plan: "small" } },
    // null takes the project off its plan: it must reach the server, not be dropped like undefined.
    { method: "PATCH", path: "/v1/projects/shop", query: {}, body: { plan: null } },
  ]);
});

test("the callback key methods read and rotate the key of the client's project, or of the one named", async () => {
  const { fetch, seen } = createFakeFetch((request) => ({
    body: { secret: request.method === "GET" ? "current" : "rotated" },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "shop", fetch });
  assert.equal(await client.getCallbackSecret(), "current");
  assert.equal(await client.rotateCallbackSecret("other"), "rotated");
  assert.deepEqual(seen.map(describeRequest), [
    { method: "GET", path: "/v1/projects/shop/callback-secret", query: {}, body: undefined },
    { method: "POST", path: "/v1/projects/other/callback-secret/rotate", query: {}, body: undefined },
  ]);
});

test("deleteProject resolves on a 204 without a body and sends cancelTasks only when given", async () => {
  const { fetch, seen } = createFakeFetch(() => ({ status: 204 }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  assert.equal(await client.deleteProject("shop"), undefined);
  await client.deleteProject("shop", { cancelTasks: true });
  await client.deleteProject("shop", { cancelTasks: false });
  assert.deepEqual(seen.map(describeRequest), [
    { method: "DELETE", path: "/v1/projects/shop", query: {}, body: undefined },
    { method: "DELETE", path: "/v1/projects/shop", query: { cancelTasks: "true" }, body: undefined },
    { method: "DELETE", path: "/v1/projects/shop", query: { cancelTasks: "false" }, body: undefined },
  ]);
});

test("deleteProject of a project with unfinished tasks throws PROJECT_HAS_TASKS with their count", async () => {
  const { fetch } = createFakeFetch(() => ({
    status: 409,
    body: { error: { code: "PROJECT_HAS_TASKS", message: "3 tasks", details: { unfinishedTasks: 3 } } },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.deleteProject("shop"), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "PROJECT_HAS_TASKS");
    assert.equal(error.status, 409);
    assert.deepEqual(error.details, { unfinishedTasks: 3 });
    return true;
  });
});

test("the token methods call the token routes and resolve with the parsed answers", async () => {
  const revoked = { ...token, revokedAt: "2025-03-03T12:00:00.000Z" };
  const { fetch, seen } = createFakeFetch((request) => {
    switch (request.method) {
      case "POST":
        return { status: 201, body: { token, secret: "kiln_t_abc" } };
      case "DELETE":
        return { body: revoked };
      default:
        return { body: { tokens: [revoked, token] } };
    }
  });
  // The client's project plays no part in token routes: a token's project is named in the call.
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "elsewhere", fetch });
  const input = { name: "ci", role: "deploy", project: "shop", expiresInS: 3600 } as const;
  assert.deepEqual(await client.createToken(input), { token, secret: "kiln_t_abc" });
  assert.deepEqual(await client.listTokens(), [revoked, token]);
  await client.listTokens({ project: "shop" });
  assert.deepEqual(await client.revokeToken("tok_1/x"), revoked);
  assert.deepEqual(seen.map(describeRequest), [
    { method: "POST", path: "/v1/tokens", query: {}, body: input },
    { method: "GET", path: "/v1/tokens", query: {}, body: undefined },
    { method: "GET", path: "/v1/tokens", query: { project: "shop" }, body: undefined },
    { method: "DELETE", path: "/v1/tokens/tok_1%2Fx", query: {}, body: undefined },
  ]);
});

test("the plan methods call the plan routes and resolve with the parsed answers", async () => {
  const withProjects = { ...plan, projects: ["shop", "web"] };
  const { fetch, seen } = createFakeFetch((request) => {
    switch (request.method) {
      case "POST":
        return { status: 201, body: plan };
      case "PATCH":
        return { body: { ...plan, maxTimeoutS: null } };
      case "DELETE":
        return { status: 204 };
      default:
        return { body: request.url.pathname === "/v1/plans" ? { plans: [plan] } : withProjects };
    }
  });
  // Plans belong to no project: the client's project must not appear in their paths.
  const client = createClient({ url: "http://kiln.test", token: "secret", project: "elsewhere", fetch });
  assert.deepEqual(await client.listPlans(), [plan]);
  assert.deepEqual(await client.createPlan("small", { maxMemoryMb: 256, maxTimeoutS: 60 }), plan);
  await client.createPlan("bare");
  assert.deepEqual(await client.getPlan("small"), withProjects);
  assert.deepEqual(await client.updatePlan("small", { maxTimeoutS: null, maxPayloadBytes: 1024 }), {
    ...plan,
    maxTimeoutS: null,
  });
  assert.equal(await client.deletePlan("a/b"), undefined);
  assert.deepEqual(seen.map(describeRequest), [
    { method: "GET", path: "/v1/plans", query: {}, body: undefined },
    {
      method: "POST",
      path: "/v1/plans",
      query: {},
      body: { name: "small", maxMemoryMb: 256, maxTimeoutS: 60 },
    },
    { method: "POST", path: "/v1/plans", query: {}, body: { name: "bare" } },
    { method: "GET", path: "/v1/plans/small", query: {}, body: undefined },
    {
      method: "PATCH",
      path: "/v1/plans/small",
      query: {},
      body: { maxTimeoutS: null, maxPayloadBytes: 1024 },
    },
    { method: "DELETE", path: "/v1/plans/a%2Fb", query: {}, body: undefined },
  ]);
});

test("deletePlan of a plan projects are on throws PLAN_IN_USE naming them", async () => {
  const { fetch } = createFakeFetch(() => ({
    status: 409,
    body: { error: { code: "PLAN_IN_USE", message: "projects are on it", details: { projects: ["shop"] } } },
  }));
  const client = createClient({ url: "http://kiln.test", token: "secret", fetch });
  await assert.rejects(client.deletePlan("small"), (error: unknown) => {
    assert.ok(error instanceof KilnApiError);
    assert.equal(error.code, "PLAN_IN_USE");
    assert.equal(error.status, 409);
    assert.deepEqual(error.details, { projects: ["shop"] });
    return true;
  });
});
