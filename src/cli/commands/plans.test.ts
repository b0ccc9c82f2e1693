/** `kiln plans` run as a user runs it: the built CLI against a fake API server. */
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import type { Plan } from "../../client/index.js";
import { FakeApiServer, type CannedAnswer, type SeenRequest } from "../fake-api-server.js";

const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();

function plan(name: string, limits: Partial<Plan> = {}): Plan {
  return {
    name,
    maxMemoryMb: null,
    maxTimeoutS: null,
    maxPayloadBytes: null,
    createdAt: threeDaysAgo,
    updatedAt: threeDaysAgo,
    ...limits,
  };
}

const plans = [
  plan("free"),
  plan("odd", { maxPayloadBytes: 1_000_000 }),
  plan("small", { maxMemoryMb: 256, maxTimeoutS: 60, maxPayloadBytes: 1024 * 1024 }),
];

function apiError(status: number, code: string, message: string, details: unknown = null): CannedAnswer {
  return { status, body: { error: { code, message, details } } };
}

/** The plan routes as the real server answers them, for a few known names. */
function answer(request: SeenRequest): CannedAnswer {
  const name = decodeURIComponent(/^\/v1\/plans\/([^/]+)$/.exec(request.url.pathname)?.[1] ?? "");
  const body = request.body === "" ? {} : (JSON.parse(request.body) as Partial<Plan>);
  const known = plans.find((candidate) => candidate.name === name);
  switch (request.method) {
    case "GET":
      if (name === "") return { status: 200, body: { plans } };
      if (known === undefined) return apiError(404, "PLAN_NOT_FOUND", `no plan '${name}'`);
      return { status: 200, body: { ...known, projects: name === "small" ? ["shop", "web"] : [] } };
    case "POST":
      if (body.name === "small") return apiError(409, "PLAN_EXISTS", "a plan named 'small' exists already");
      return { status: 201, body: plan(body.name ?? "", body) };
    case "PATCH":
      if (body.maxMemoryMb === 128) {
        const message =
          "function 'resize' of project 'shop' has memoryMb 256, over the limit of plan 'small' (at most 128)";
        return apiError(400, "OVER_PLAN_LIMIT", `${message}; lower their settings first`, {
          plan: name,
          errors: [{ field: "plan", message }],
        });
      }
      return { status: 200, body: { ...known, ...body } };
    case "DELETE":
      if (name === "small") {
        const message = "projects are on plan 'small' (shop, web); move them to another plan first";
        return apiError(409, "PLAN_IN_USE", message, { projects: ["shop", "web"] });
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

/** The requests the CLI made, as `METHOD path body`. */
function requestsMade(): string[] {
  return api.seen.map((request) => `${request.method} ${request.url.pathname} ${request.body}`.trim());
}

test("without a subcommand lists the plans as a table of their limits, - where there is none", async () => {
  const { code, stdout } = await api.runKiln(["plans"]);
  assert.equal(code, 0);
  assert.deepEqual(
    stdout
      .trimEnd()
      .split("\n")
      .map((line) => line.split(/ {2,}/)),
    [
      ["NAME", "MEMORY", "TIMEOUT", "PAYLOAD"],
      ["free", "-", "-", "-"],
      ["odd", "-", "-", "1000000 B"],
      ["small", "256 MiB", "60s", "1 MiB"],
    ],
  );
  assert.deepEqual(requestsMade(), ["GET /v1/plans"]);
  assert.equal(api.seen[0]?.authorization, "Bearer secret");
});

test("list --json prints the plans as the server sent them", async () => {
  const { code, stdout } = await api.runKiln(["plans", "list", "--json"]);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), { plans });
});

test("create sends the name and only the limits given, and says how to put a project on the plan", async () => {
  const args = ["plans", "create", "medium", "--max-memory-mb", "1024", "--max-timeout-s", "300"];
  const { code, stdout } = await api.runKiln(args);
  assert.equal(code, 0);
  assert.match(stdout, /^Created plan medium\.$/m);
  assert.match(stdout, /^Memory +at most 1024 MiB$/m);
  assert.match(stdout, /^Timeout +at most 300s$/m);
  assert.match(stdout, /^Payload +not limited$/m);
  assert.match(stdout, /^Put a project on it with `kiln projects update <project> --plan medium`\.$/m);
  assert.deepEqual(
    api.seen.map((request) => `${request.method} ${request.url.pathname}`),
    ["POST /v1/plans"],
  );
  assert.deepEqual(JSON.parse(api.seen[0]?.body ?? ""), {
    name: "medium",
    maxMemoryMb: 1024,
    maxTimeoutS: 300,
  });
});

test("create of a name that is taken prints PLAN_EXISTS and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["plans", "create", "small"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, "PLAN_EXISTS: a plan named 'small' exists already\n");
});

test("show prints the plan's limits and the projects on it", async () => {
  const { code, stdout } = await api.runKiln(["plans", "show", "small"]);
  assert.equal(code, 0);
  assert.match(stdout, /^Plan +small$/m);
  assert.match(stdout, /^Memory +at most 256 MiB$/m);
  assert.match(stdout, /^Timeout +at most 60s$/m);
  assert.match(stdout, /^Payload +at most 1 MiB$/m);
  assert.match(stdout, /^Projects +shop, web$/m);
  const unused = await api.runKiln(["plans", "show", "free"]);
  assert.match(unused.stdout, /^Memory +not limited$/m);
  assert.match(unused.stdout, /^Projects +none$/m);
  assert.deepEqual(requestsMade(), ["GET /v1/plans/small", "GET /v1/plans/free"]);
});

test("show of an unknown plan prints PLAN_NOT_FOUND and exits 1", async () => {
  const { code, stderr } = await api.runKiln(["plans", "show", "gold"]);
  assert.equal(code, 1);
  assert.equal(stderr, "PLAN_NOT_FOUND: no plan 'gold'\n");
});

test("update sends only the limits given, none as null, and says when every node holds to them", async () => {
  const args = ["plans", "update", "small", "--max-timeout-s", "none", "--max-payload-bytes", "2048"];
  const { code, stdout } = await api.runKiln(args);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(api.seen[0]?.body ?? ""), { maxTimeoutS: null, maxPayloadBytes: 2048 });
  assert.equal(api.seen[0]?.method, "PATCH");
  assert.equal(api.seen[0]?.url.pathname, "/v1/plans/small");
  assert.match(stdout, /^Memory +at most 256 MiB$/m);
  assert.match(stdout, /^Timeout +not limited$/m);
  assert.match(stdout, /^Payload +at most 2 KiB$/m);
  assert.match(stdout, /^Every node holds the plan's projects to these limits within a second\.$/m);
});

test("update to limits a function is over prints OVER_PLAN_LIMIT naming it and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["plans", "update", "small", "--max-memory-mb", "128"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    "OVER_PLAN_LIMIT: function 'resize' of project 'shop' has memoryMb 256, over the limit of plan " +
      "'small' (at most 128); lower their settings first\n",
  );
});

test("delete deletes the plan by name", async () => {
  const { code, stdout } = await api.runKiln(["plans", "delete", "free"]);
  assert.equal(code, 0);
  assert.equal(stdout, "Deleted plan free.\n");
  assert.deepEqual(requestsMade(), ["DELETE /v1/plans/free"]);
});

test("delete of a plan projects are on prints PLAN_IN_USE with how to move them and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["plans", "delete", "small"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    "PLAN_IN_USE: projects are on plan 'small' (shop, web); move them to another plan first\n" +
      "hint: kiln projects update <project> --plan OTHER (or --plan none) moves one\n",
  );
});

test("bad arguments and limits are usage errors that point at the help, and call no server", async () => {
  const cases: [string[], string][] = [
    [
      ["plans", "rename", "small"],
      "unknown subcommand 'rename' of plans; use one of list, create, show, update, delete",
    ],
    [["plans", "create"], "missing <name>"],
    [
      ["plans", "create", "none"],
      "'none' means no plan to `kiln projects update --plan`: choose another name",
    ],
    [
      ["plans", "create", "x", "--max-memory-mb", "none"],
      "--max-memory-mb must be a whole number 64..4096, got 'none'",
    ],
    [
      ["plans", "create", "x", "--max-memory-mb", "32"],
      "--max-memory-mb must be a whole number 64..4096, got '32'",
    ],
    [
      ["plans", "create", "x", "--max-timeout-s", "1.5"],
      "--max-timeout-s must be a whole number 1..3600, got '1.5'",
    ],
    [
      ["plans", "update", "small", "--max-payload-bytes", "0"],
      "--max-payload-bytes must be a whole number 1..1073741824 or none, got '0'",
    ],
    [
      ["plans", "update", "small"],
      "update needs at least one of --max-memory-mb, --max-timeout-s, --max-payload-bytes",
    ],
    [["plans", "show"], "missing <name>"],
    [["plans", "delete", "small", "--max-memory-mb", "64"], "Unknown option '--max-memory-mb'"],
    [["plans", "delete", "a", "b"], "unexpected argument 'b'"],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await api.runKiln(args);
    assert.equal(code, 1, args.join(" "));
    assert.equal(stdout, "", args.join(" "));
    assert.ok(stderr.startsWith(`USAGE_ERROR: ${message}`), `${args.join(" ")}: ${stderr}`);
    assert.ok(stderr.trimEnd().endsWith("(see kiln plans --help)"), stderr);
  }
  assert.deepEqual(requestsMade(), []);
});

test("--help prints every subcommand and which limits a plan has", async () => {
  const { code, stdout } = await api.runKiln(["plans", "--help"]);
  assert.equal(code, 0);
  for (const line of [
    "[list]",
    "create <name> [--max-memory-mb N] [--max-timeout-s N] [--max-payload-bytes N]",
    "show <name>",
    "update <name> [--max-memory-mb N|none] [--max-timeout-s N|none] [--max-payload-bytes N|none]",
    "delete <name>",
  ]) {
    assert.ok(stdout.includes(`kiln plans ${line}`), line);
  }
  assert.match(stdout, /The limits are memory, timeout and payload size/);
  const overview = await api.runKiln(["--help"]);
  assert.match(overview.stdout, /^ {2}plans +list, create, show, update and delete plans/m);
});
