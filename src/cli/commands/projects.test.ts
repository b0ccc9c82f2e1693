/** `kiln projects` run as a user runs it: the built CLI against a fake API server. */
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import type { Plan, Project } from "../../client/index.js";
import { FakeApiServer, type CannedAnswer, type SeenRequest } from "../fake-api-server.js";

const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();

function project(name: string, description = "", plan: string | null = null): Project {
  return { name, description, plan, createdAt: threeDaysAgo, updatedAt: threeDaysAgo };
}

const smallPlan: Plan = {
  name: "small",
  maxMemoryMb: 256,
  maxTimeoutS: 60,
  maxPayloadBytes: null,
  createdAt: threeDaysAgo,
  updatedAt: threeDaysAgo,
};

function apiError(status: number, code: string, message: string, details: unknown = null): CannedAnswer {
  return { status, body: { error: { code, message, details } } };
}

/** The project routes as the real server answers them, for a few known names. */
function answer(request: SeenRequest): CannedAnswer {
  const name = decodeURIComponent(/^\/v1\/projects\/([^/]+)$/.exec(request.url.pathname)?.[1] ?? "");
  const body = request.body === "" ? {} : (JSON.parse(request.body) as Record<string, string | null>);
  switch (request.method) {
    case "GET":
      if (name === "")
        return { status: 200, body: { projects: [project("default"), project("shop", "the web shop")] } };
      if (name === "missing") return apiError(404, "PROJECT_NOT_FOUND", `no project '${name}'`);
      return {
        status: 200,
        body: {
          ...project(name, "", name === "shop" ? "small" : null),
          limits: name === "shop" ? smallPlan : null,
          usage: { functions: 3, unfinishedTasks: 2 },
        },
      };
    case "POST":
      if (body.name === "taken")
        return apiError(409, "PROJECT_EXISTS", "a project named 'taken' exists already");
      return { status: 201, body: project(body.name ?? "", body.description ?? undefined) };
    case "PATCH":
      if (body.plan === "tiny") {
        const message = "function 'resize' of project 'shop' has memoryMb 512, over the limit of plan 'tiny'";
        return apiError(400, "OVER_PLAN_LIMIT", message, {
          plan: "tiny",
          errors: [{ field: "plan", message }],
        });
      }
      return { status: 200, body: project(name, body.description ?? "", body.plan ?? null) };
    case "DELETE":
      if (name === "busy" && request.url.searchParams.get("cancelTasks") !== "true") {
        return apiError(409, "PROJECT_HAS_TASKS", "project 'busy' has 4 queued, delayed or running tasks", {
          unfinishedTasks: 4,
        });
      }
      return { status: 204 };
    default:
      return apiError(404, "ROUTE_NOT_FOUND", "no route");
  }
}

let api: FakeApiServer;
before(async () => (api = await FakeApiServer.start(answer)));
after(() => api.close());
beforeEach(() => (api.seen.length = 0));

/** The requests the CLI made, as `METHOD path?query body`. */
function requestsMade(): string[] {
  return api.seen.map((request) =>
    `${request.method} ${request.url.pathname}${request.url.search} ${request.body}`.trim(),
  );
}

test("without a subcommand lists the projects as a table of name, description and age", async () => {
  const { code, stdout } = await api.runKiln(["projects"]);
  assert.equal(code, 0);
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0] ?? "", /^NAME +DESCRIPTION +CREATED$/);
  assert.match(lines[1] ?? "", /^default +- +3d ago$/);
  assert.match(lines[2] ?? "", /^shop +the web shop +3d ago$/);
  assert.deepEqual(requestsMade(), ["GET /v1/projects"]);
  assert.equal(api.seen[0]?.authorization, "Bearer secret");
});

test("list --json prints the projects as the server sent them", async () => {
  const { code, stdout } = await api.runKiln(["projects", "list", "--json"]);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), { projects: [project("default"), project("shop", "the web shop")] });
});

test("create sends the name and description and says how to work in the new project", async () => {
  const { code, stdout } = await api.runKiln(["projects", "create", "shop", "--description", "the web shop"]);
  assert.equal(code, 0);
  assert.equal(stdout, "Created project shop. Work in it with --project shop.\n");
  assert.deepEqual(requestsMade(), ['POST /v1/projects {"name":"shop","description":"the web shop"}']);
});

test("create of a name that is taken prints PROJECT_EXISTS and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["projects", "create", "taken"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, "PROJECT_EXISTS: a project named 'taken' exists already\n");
});

test("show without a name shows the project --project or KILN_PROJECT names, with what it holds", async () => {
  const { code, stdout } = await api.runKiln(["projects", "show", "--project", "shop"]);
  assert.equal(code, 0);
  assert.match(stdout, /^Project +shop$/m);
  assert.match(stdout, /^Functions +3$/m);
  assert.match(stdout, /^Unfinished +2 tasks \(queued, delayed or running\)$/m);
  const fromEnv = await api.runKiln(["projects", "show"], { KILN_PROJECT: "from-env" });
  assert.equal(fromEnv.code, 0);
  await api.runKiln(["projects", "show", "named"], { KILN_PROJECT: "from-env" });
  assert.deepEqual(requestsMade(), [
    "GET /v1/projects/shop",
    "GET /v1/projects/from-env",
    "GET /v1/projects/named",
  ]);
});

test("a global flag's value is not taken for the subcommand: --project list show shows project 'list'", async () => {
  const { code } = await api.runKiln(["projects", "--project", "list", "show"]);
  assert.equal(code, 0);
  assert.deepEqual(requestsMade(), ["GET /v1/projects/list"]);
});

test("show prints the plan the project is on with its limits, or that it is on none", async () => {
  const onPlan = await api.runKiln(["projects", "show", "shop"]);
  assert.equal(onPlan.code, 0);
  assert.match(
    onPlan.stdout,
    /^Plan +small \(memory at most 256 MiB, timeout at most 60s, payload not limited\)$/m,
  );
  const offPlan = await api.runKiln(["projects", "show", "free"]);
  assert.equal(offPlan.code, 0);
  assert.match(offPlan.stdout, /^Plan +none \(no limits\)$/m);
});

test("update sends the new description and shows the project", async () => {
  const { code, stdout } = await api.runKiln(["projects", "update", "shop", "--description", "new words"]);
  assert.equal(code, 0);
  assert.match(stdout, /^Description +new words$/m);
  assert.deepEqual(requestsMade(), ['PATCH /v1/projects/shop {"description":"new words"}']);
});

test("update --plan puts the project on the plan, and --plan none takes it off", async () => {
  const onPlan = await api.runKiln(["projects", "update", "shop", "--plan", "small"]);
  assert.equal(onPlan.code, 0);
  assert.match(onPlan.stdout, /^Plan +small$/m);
  const offPlan = await api.runKiln(["projects", "update", "shop", "--plan", "none"]);
  assert.equal(offPlan.code, 0);
  assert.match(offPlan.stdout, /^Plan +none$/m);
  assert.deepEqual(requestsMade(), [
    'PATCH /v1/projects/shop {"plan":"small"}',
    'PATCH /v1/projects/shop {"plan":null}',
  ]);
});

test("update --plan to a plan a function is over prints OVER_PLAN_LIMIT naming it and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["projects", "update", "shop", "--plan", "tiny"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    "OVER_PLAN_LIMIT: function 'resize' of project 'shop' has memoryMb 512, over the limit of plan 'tiny'\n",
  );
});

test("delete with --cancel-tasks asks the server to cancel the project's tasks first", async () => {
  const { code, stdout } = await api.runKiln(["projects", "delete", "busy", "--cancel-tasks"]);
  assert.equal(code, 0);
  assert.equal(stdout, "Deleted project busy with its functions, revisions, tasks and tokens.\n");
  assert.deepEqual(requestsMade(), ["DELETE /v1/projects/busy?cancelTasks=true"]);
});

test("delete of a project with unfinished tasks prints PROJECT_HAS_TASKS with a hint and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["projects", "delete", "busy"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    "PROJECT_HAS_TASKS: project 'busy' has 4 queued, delayed or running tasks\n" +
      "hint: --cancel-tasks cancels them first (running tasks are stopped)\n",
  );
  assert.deepEqual(requestsMade(), ["DELETE /v1/projects/busy"]);
});

test("bad arguments are usage errors that point at the help, and call no server", async () => {
  const cases: [string[], string][] = [
    [
      ["projects", "rename", "shop"],
      "unknown subcommand 'rename' of projects; use one of list, create, show, update, delete",
    ],
    [["projects", "create"], "missing <name>"],
    [["projects", "update", "shop"], "update needs --description TEXT or --plan P|none"],
    [["projects", "update", "shop", "--plan"], "Option '--plan <value>' argument missing"],
    [["projects", "delete", "shop", "--description", "x"], "Unknown option '--description'"],
    [["projects", "show", "a", "b"], "unexpected argument 'b'"],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await api.runKiln(args);
    assert.equal(code, 1, args.join(" "));
    assert.ok(stderr.startsWith(`USAGE_ERROR: ${message}`), `${args.join(" ")}: ${stderr}`);
    assert.ok(stderr.trimEnd().endsWith("(see kiln projects --help)"), stderr);
  }
  assert.deepEqual(requestsMade(), []);
});

test("--help prints every subcommand", async () => {
  const { code, stdout } = await api.runKiln(["projects", "--help"]);
  assert.equal(code, 0);
  for (const line of [
    "[list]",
    "create <name>",
    "show [<name>]",
    "update <name> [--description TEXT] [--plan P|none]",
    "delete <name> [--cancel-tasks]",
  ]) {
    assert.ok(stdout.includes(`kiln projects ${line}`), line);
  }
});
