/** `kiln tokens` run as a user runs it: the built CLI against a fake API server. */
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import type { ApiToken, TokenInput } from "../../client/index.js";
import { FakeApiServer, type CannedAnswer, type SeenRequest } from "../fake-api-server.js";

const nowMs = Date.now();
const hoursFromNow = (hours: number) => new Date(nowMs + hours * 3_600_000).toISOString();

const deployToken: ApiToken = {
  id: "tok_1",
  name: "ci",
  role: "deploy",
  project: "shop",
  createdAt: hoursFromNow(-48),
  expiresAt: hoursFromNow(24 * 30 + 1),
  lastUsedAt: hoursFromNow(-2),
  revokedAt: null,
};
const adminToken: ApiToken = {
  ...deployToken,
  id: "tok_2",
  name: "ops",
  role: "admin",
  project: null,
  expiresAt: null,
  lastUsedAt: null,
};
const oldToken: ApiToken = {
  ...deployToken,
  id: "tok_3",
  name: "old",
  role: "read",
  expiresAt: hoursFromNow(-24),
  revokedAt: hoursFromNow(-3),
};
const secret = "kiln_t_s3cret";

/** The token routes as the real server answers them. */
function answer(request: SeenRequest): CannedAnswer {
  const id = /^\/v1\/tokens\/([^/]+)$/.exec(request.url.pathname)?.[1];
  switch (request.method) {
    case "GET":
      return { status: 200, body: { tokens: [deployToken, adminToken, oldToken] } };
    case "POST": {
      const input = JSON.parse(request.body) as TokenInput;
      // Half a minute late, so that "expires in 2h" does not depend on how fast the CLI prints it.
      const expiresAt =
        input.expiresInS === undefined ? null : new Date(Date.now() + (input.expiresInS + 30) * 1000);
      const token: ApiToken = {
        ...deployToken,
        name: input.name,
        role: input.role,
        project: input.project ?? null,
        expiresAt: expiresAt?.toISOString() ?? null,
        lastUsedAt: null,
      };
      return { status: 201, body: { token, secret } };
    }
    case "DELETE":
      if (id !== "tok_1") {
        return {
          status: 404,
          body: { error: { code: "TOKEN_NOT_FOUND", message: `no token '${id}'`, details: null } },
        };
      }
      return { status: 200, body: { ...deployToken, revokedAt: new Date().toISOString() } };
    default:
      return {
        status: 404,
        body: { error: { code: "ROUTE_NOT_FOUND", message: "no route", details: null } },
      };
  }
}

let api: FakeApiServer;
before(async () => (api = await FakeApiServer.start(answer)));
after(() => api.close());
beforeEach(() => (api.seen.length = 0));

function requestsMade(): string[] {
  return api.seen.map((request) => `${request.method} ${request.url.pathname}${request.url.search}`);
}

test("without a subcommand lists every token with its role, project, expiry, last use and revocation", async () => {
  // The global project plays no part: tokens of every project are listed.
  const { code, stdout } = await api.runKiln(["tokens", "--project", "elsewhere"], { KILN_PROJECT: "other" });
  assert.equal(code, 0);
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0] ?? "", /^ID +NAME +ROLE +PROJECT +EXPIRES +LAST USED +REVOKED$/);
  assert.match(lines[1] ?? "", /^tok_1 +ci +deploy +shop +in 30d +2h ago +-$/);
  assert.match(lines[2] ?? "", /^tok_2 +ops +admin +all +never +never +-$/);
  assert.match(lines[3] ?? "", /^tok_3 +old +read +shop +expired 1d ago +2h ago +3h ago$/);
  assert.deepEqual(requestsMade(), ["GET /v1/tokens"]);
});

test("list --for-project asks for that project's tokens; --json prints them as sent", async () => {
  const { code, stdout } = await api.runKiln(["tokens", "list", "--for-project", "shop", "--json"]);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), { tokens: [deployToken, adminToken, oldToken] });
  assert.deepEqual(requestsMade(), ["GET /v1/tokens?project=shop"]);
});

test("create sends the name, role, project and expiry and prints the secret once, saying so", async () => {
  const args = ["tokens", "create", "ci", "--role", "run", "--for-project", "shop", "--expires-in-s", "7200"];
  const { code, stdout } = await api.runKiln(args);
  assert.equal(code, 0);
  assert.equal(
    stdout,
    "Created token tok_1 (ci): run in project shop, expires in 2h.\n" +
      `Secret: ${secret}\n` +
      "It will not be shown again (the server keeps only its SHA-256): store it now, e.g. as KILN_TOKEN.\n",
  );
  assert.deepEqual(requestsMade(), ["POST /v1/tokens"]);
  assert.deepEqual(JSON.parse(api.seen[0]?.body ?? ""), {
    name: "ci",
    role: "run",
    project: "shop",
    expiresInS: 7200,
  });
});

test("create of an admin token sends no project; --json prints the token and its secret", async () => {
  const { code, stdout } = await api.runKiln(["tokens", "create", "root", "--role", "admin", "--json"]);
  assert.equal(code, 0);
  const printed = JSON.parse(stdout) as { token: ApiToken; secret: string };
  assert.equal(printed.secret, secret);
  assert.equal(printed.token.role, "admin");
  assert.equal(printed.token.project, null);
  assert.deepEqual(JSON.parse(api.seen[0]?.body ?? ""), { name: "root", role: "admin" });
});

test("create with a missing or wrong role, project or expiry is a usage error and calls no server", async () => {
  const cases: [string[], string][] = [
    [["tokens", "create", "ci"], "create needs --role, one of admin, deploy, run, read"],
    [
      ["tokens", "create", "ci", "--role", "owner"],
      "--role must be one of admin, deploy, run, read, got 'owner'",
    ],
    [
      ["tokens", "create", "ci", "--role", "run", "--project", "shop"],
      "a 'run' token needs --for-project P, the project it works in; --project does not set it",
    ],
    [
      ["tokens", "create", "ci", "--role", "admin", "--for-project", "shop"],
      "an admin token works in every project: leave out --for-project",
    ],
    [
      ["tokens", "create", "ci", "--role", "read", "--for-project", "shop", "--expires-in-s", "30"],
      "--expires-in-s must be a whole number 60..315360000, got '30'",
    ],
    [["tokens", "create", "--role", "read", "--for-project", "shop"], "missing <name>"],
    [["tokens", "rotate", "tok_1"], "unknown subcommand 'rotate' of tokens; use one of list, create, revoke"],
    [["tokens", "revoke"], "missing <id>"],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await api.runKiln(args);
    assert.equal(code, 1, args.join(" "));
    assert.equal(stdout, "", args.join(" "));
    assert.equal(stderr, `USAGE_ERROR: ${message} (see kiln tokens --help)\n`);
  }
  assert.deepEqual(requestsMade(), []);
});

test("revoke revokes the token by id and says every node refuses it", async () => {
  const { code, stdout } = await api.runKiln(["tokens", "revoke", "tok_1"]);
  assert.equal(code, 0);
  assert.equal(stdout, "Revoked token tok_1 (ci): every node refuses it within a second.\n");
  assert.deepEqual(requestsMade(), ["DELETE /v1/tokens/tok_1"]);
});

test("revoke of an unknown id prints TOKEN_NOT_FOUND and exits 1", async () => {
  const { code, stdout, stderr } = await api.runKiln(["tokens", "revoke", "tok_nope"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, "TOKEN_NOT_FOUND: no token 'tok_nope'\n");
});

test("--help says --for-project, not --project, sets the token's project", async () => {
  const { code, stdout } = await api.runKiln(["tokens", "--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /kiln tokens create <name> --role ROLE \[--for-project P\] \[--expires-in-s N\]/);
  assert.match(stdout, /Not --project: that global\s+flag names the project other commands work in/);
});
