/**
 * API fuzzing: thousands of requests generated from the node's own OpenAPI document — every route and
 * method, with path parameters, queries and bodies mutated (wrong types, missing and unknown fields,
 * huge and negative numbers, long strings, NUL bytes, deep nesting, bad ids, bodies that are not JSON).
 * No answer may be a 5xx; every error has the one shape with a catalog code and status; and a refused
 * request (4xx) changes nothing in the store. The seed is printed; `KILN_FUZZ_SEED=<seed>` replays a run.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import type { InjectOptions } from "fastify";
import { loadConfig } from "../config/config.js";
import { errorCatalog, type ErrorCode } from "../domain/errors.js";
import { createLogger } from "../logger.js";
import { startNode } from "../main.js";
import { deployPausedHello, testToken } from "./test-node.js";

type Schema = Record<string, unknown>;

interface Operation {
  method: string;
  path: string;
  pathParams: string[];
  query: Record<string, Schema>;
  body: Schema | null;
}

const requestCount = 3_000;
const timeBudgetMs = 30_000;
const headers = { authorization: `Bearer ${testToken}` };

/** mulberry32: small, fast, and the same sequence for the same seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const deepText = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

/** Values that are wrong somewhere: types, limits, sizes, characters, nesting. */
const hostileValues: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  -1e308,
  1e308,
  2 ** 53 + 1,
  "",
  " ",
  "x".repeat(100_000),
  "\u0000",
  "a\u0000b",
  "../../etc/passwd",
  "é漢字🙂",
  "NaN",
  [],
  [1, "two", null],
  {},
  { __proto__: { polluted: true } },
  { constructor: { prototype: { polluted: true } } },
  JSON.parse(deepText(90)) as unknown,
];

const hostileSegments = [
  "",
  "x".repeat(300),
  "%00",
  "a%00b",
  "..",
  "%2e%2e",
  "UPPER",
  "-leading",
  "😀",
  "%ZZ",
  "a b",
  "default",
  "hello",
  "00000000-0000-0000-0000-000000000000",
];

function operationsOf(document: { paths: Record<string, Record<string, Schema>> }): Operation[] {
  const operations: Operation[] = [];
  for (const [route, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const parameters = (operation.parameters as { name: string; in: string; schema: Schema }[]) ?? [];
      const content = (operation.requestBody as { content?: Record<string, { schema: Schema }> } | undefined)
        ?.content;
      operations.push({
        method: method.toUpperCase(),
        path: route,
        pathParams: parameters.filter((p) => p.in === "path").map((p) => p.name),
        query: Object.fromEntries(parameters.filter((p) => p.in === "query").map((p) => [p.name, p.schema])),
        body: content?.["application/json"]?.schema ?? null,
      });
    }
  }
  return operations;
}

test(
  "fuzzed API requests: no 5xx, one error shape, and no state change on any 4xx",
  { timeout: 120_000 },
  async (t) => {
    const seed = Number(process.env.KILN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`seed ${seed} (replay with KILN_FUZZ_SEED=${seed})`);
    console.log(`api-fuzz: seed ${seed} (replay with KILN_FUZZ_SEED=${seed})`);
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

    const root = await mkdtemp(path.join(tmpdir(), "kiln-api-fuzz-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    // No sandboxes (nothing created here ever runs) and a tiny admission budget (invocations answer 429 fast).
    const config = loadConfig(
      { dataDir: path.join(root, "data"), port: 0, token: testToken, maxWorkers: 0, invokeAdmissionMs: 1 },
      {},
    );
    const node = await startNode(config, createLogger("fatal"));
    t.after(() => node.close());
    await deployPausedHello({ node, root, close: () => Promise.resolve() });
    const send = (request: InjectOptions) =>
      node.app.inject({ ...request, headers: { ...headers, ...request.headers } });

    const created = await send({
      method: "POST",
      url: "/v1/projects/default/tasks",
      payload: { function: "hello" },
    });
    const taskId = created.json<{ task: { id: string } }>().task.id;
    // A finished task: long polls on it answer at once.
    assert.equal(
      (await send({ method: "POST", url: `/v1/projects/default/tasks/${taskId}/cancel` })).statusCode,
      200,
    );
    const revision = (await send({ url: "/v1/projects/default/functions/hello" })).json<{
      currentRevision: string;
    }>().currentRevision;

    const db = new Database(path.join(config.dataDir, "kiln.db"), { readonly: true, fileMustExist: true });
    t.after(() => db.close());
    const fingerprint = () =>
      JSON.stringify([
        db
          .prepare("SELECT name, project, current_revision, settings FROM functions ORDER BY project, name")
          .all(),
        db.prepare("SELECT count(*) AS n FROM revisions").get(),
        db
          .prepare("SELECT project, state, count(*) AS n FROM tasks GROUP BY project, state ORDER BY 1, 2")
          .all(),
        db.prepare("SELECT name FROM projects ORDER BY name").all(),
      ]);

    const baselineParams: Record<string, string> = { project: "default", name: "hello", id: taskId };
    const document = (await send({ url: "/openapi.json" })).json<{
      paths: Record<string, Record<string, Schema>>;
    }>();
    const operations = operationsOf(document);
    assert.ok(operations.length >= 10, `only ${operations.length} operations in the OpenAPI document`);

    /** A value the schema accepts, so that one mutation at a time is what gets refused. */
    function validValue(schema: Schema, key = ""): unknown {
      if (Array.isArray(schema.anyOf)) return validValue(pick(schema.anyOf as Schema[]), key);
      if ("const" in schema) return schema.const;
      switch (schema.type) {
        case "object": {
          const value: Record<string, unknown> = {};
          const properties = (schema.properties as Record<string, Schema> | undefined) ?? {};
          const required = new Set((schema.required as string[] | undefined) ?? []);
          for (const [name, property] of Object.entries(properties)) {
            if (required.has(name) || random() < 0.3) value[name] = validValue(property, name);
          }
          return value;
        }
        case "array":
          return Array.from({ length: Math.max(1, Number(schema.minItems ?? 1)) }, () =>
            validValue(schema.items as Schema, key),
          );
        case "integer":
        case "number":
          return Number(schema.minimum ?? 0);
        case "boolean":
          return random() < 0.5;
        case "string":
          if (key === "revision") return revision;
          if (key === "function") return "hello";
          if (key === "callbackUrl") return "https://93.184.215.14/hook";
          return "fuzz";
        default:
          return { any: "json" };
      }
    }

    /** Replaces, removes or adds one thing somewhere inside `value`. */
    function mutate(value: unknown, depth = 0): unknown {
      const isContainer = typeof value === "object" && value !== null;
      if (!isContainer || depth > 4 || random() < 0.3) return pick(hostileValues);
      if (Array.isArray(value)) {
        const copy = [...(value as unknown[])];
        if (copy.length === 0 || random() < 0.2) copy.push(pick(hostileValues));
        else {
          const index = Math.floor(random() * copy.length);
          copy[index] = mutate(copy[index], depth + 1);
        }
        return copy;
      }
      const copy = { ...(value as Record<string, unknown>) };
      const keys = Object.keys(copy);
      const roll = random();
      if (keys.length === 0 || roll < 0.15)
        copy[pick(["unknown", "x".repeat(500), "\u0000", "tasks", "function"])] = pick(hostileValues);
      else if (roll < 0.3) delete copy[pick(keys)];
      else {
        const key = pick(keys);
        copy[key] = mutate(copy[key], depth + 1);
      }
      return copy;
    }

    function buildRequest(operation: Operation): InjectOptions & { url: string } {
      const params = { ...baselineParams };
      const query: Record<string, string> = {};
      for (const [name, schema] of Object.entries(operation.query)) {
        if (random() < 0.3) query[name] = String(validValue(schema, name));
      }
      let payload: string | Buffer | undefined;
      let contentType: string | undefined;
      if (operation.body !== null) {
        payload = JSON.stringify(validValue(operation.body));
        contentType = "application/json";
      } else if (operation.method === "PUT") {
        payload = Buffer.from(Array.from({ length: 64 }, () => Math.floor(random() * 256)));
        contentType = "application/gzip";
      }
      const roll = random();
      if (roll < 0.2 && operation.pathParams.length > 0) {
        params[pick(operation.pathParams)] = pick(hostileSegments);
      } else if (roll < 0.4) {
        const name =
          random() < 0.7 && Object.keys(operation.query).length > 0
            ? pick(Object.keys(operation.query))
            : pick(["unknown", "wait", "limit"]);
        query[name] = pick([
          "-1",
          "1e308",
          "NaN",
          "",
          "abc",
          "\u0000",
          "x".repeat(5000),
          "0.5",
          "3601",
          "true",
          "[]",
        ]);
      } else if (roll < 0.75 && payload !== undefined && contentType === "application/json") {
        payload = JSON.stringify(mutate(JSON.parse(payload as string)));
      } else if (roll < 0.9) {
        const raw = pick([
          deepText(6_000),
          `{"function":"hello","payload":${deepText(100_000)}}`,
          `{"tasks":[{"function":"hello","payload":${deepText(120)}}]}`,
          "{",
          "",
          "null",
          '"text"',
          "\u0000",
          '{"__proto__":{"x":1}}',
        ]);
        payload = raw;
        contentType = pick(["application/json", "text/plain", "application/gzip", "application/x-tar"]);
      }
      let url = operation.path.replace(/\{(\w+)\}/g, (_match, name: string) =>
        random() < 0.1 ? params[name]! : encodeURIComponent(params[name]!),
      );
      const search = new URLSearchParams(query).toString();
      if (search !== "") url += `?${search}`;
      return {
        method: operation.method,
        url,
        ...(payload === undefined ? {} : { payload }),
        headers: contentType === undefined ? {} : { "content-type": contentType },
      };
    }

    let before = fingerprint();
    const statuses = new Map<number, number>();
    const startedMs = Date.now();
    let sent = 0;
    for (; sent < requestCount && Date.now() - startedMs < timeBudgetMs; sent++) {
      const request = buildRequest(pick(operations));
      const url = request.url;
      const response = await send(request);
      const what = `request ${sent} (seed ${seed}): ${request.method} ${url.slice(0, 200)} → ${response.statusCode} ${response.body.slice(0, 300)}`;
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      assert.ok(response.statusCode < 500, what);
      if (response.statusCode >= 400) {
        const body = response.json<{ error?: { code?: string; message?: unknown; details?: unknown } }>();
        const code = body.error?.code as ErrorCode | undefined;
        assert.ok(code !== undefined && code in errorCatalog, `no catalog code: ${what}`);
        assert.equal(errorCatalog[code].status, response.statusCode, what);
        assert.ok(typeof body.error?.message === "string" && body.error.message !== "", what);
        assert.ok(body.error?.details === null || typeof body.error?.details === "object", what);
      }
      // A 429 answers a sync invocation that was enqueued and then cancelled: a documented change.
      if (response.statusCode >= 400 && response.statusCode !== 429) {
        assert.equal(fingerprint(), before, `a refused request changed the store: ${what}`);
      } else {
        // A retried task runs again; cancel it so that long polls on it keep answering at once.
        await send({ method: "POST", url: `/v1/projects/default/tasks/${taskId}/cancel` });
        before = fingerprint();
      }
    }
    t.diagnostic(
      `${sent} requests in ${Date.now() - startedMs} ms: ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    assert.ok(sent >= 1_000, `only ${sent} requests within the time budget`);
  },
);
