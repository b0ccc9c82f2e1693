/**
 * The server log: a request that fails unexpectedly (500) is logged with its error and the request id
 * its answer names; refused input and successful requests add nothing (no per-request lines).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { Cluster } from "../cluster/cluster.js";
import { loadConfig } from "../config/config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { createLogger } from "../logger.js";
import type { Store } from "../store/store.js";
import { buildApi } from "./server.js";

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  url?: string;
  err?: { message: string; stack: string };
}

test("a 500 is logged with its error, stack and the request id the answer gives", async (t) => {
  const lines: LogLine[] = [];
  const logger = createLogger("info", { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  const scratchDir = await mkdtemp(path.join(tmpdir(), "kiln-error-log-"));
  t.after(() => rm(scratchDir, { recursive: true, force: true }));
  // A store whose disk has failed: any route that reads it fails in a way the API does not expect.
  const store = {
    hasProject: (project: string) =>
      project === "default" ? Promise.reject(new Error("disk on fire")) : Promise.resolve(false),
  } as unknown as Store;
  const app = await buildApi({
    store,
    dispatcher: {} as Dispatcher,
    cluster: { nodeId: "node-test" } as Cluster,
    config: loadConfig({ dataDir: scratchDir }, {}),
    token: "t",
    isolation: "process",
    sandboxUsage: () => ({ sandboxes: 0, reservedMb: 0, reservedLongMb: 0 }),
    scratchDir,
    logger,
  });
  t.after(() => app.close());
  const authorization = "Bearer t";

  const healthy = await app.inject({ url: "/healthz" });
  assert.equal(healthy.statusCode, 200);
  const badInput = await app.inject({
    url: "/v1/projects/default/tasks?limit=0",
    headers: { authorization },
  });
  assert.equal(badInput.statusCode, 400);
  assert.equal(lines.length, 0, "requests that succeed or are refused are not logged");

  const failed = await app.inject({ url: "/v1/projects/default/functions", headers: { authorization } });
  assert.equal(failed.statusCode, 500, failed.body);
  const { error } = failed.json<{
    error: { code: string; message: string; details: { requestId: string } };
  }>();
  assert.equal(error.code, "INTERNAL");
  assert.doesNotMatch(error.message, /disk on fire/, "the cause stays in the log, not in the answer");
  assert.equal(lines.length, 1, JSON.stringify(lines));
  const line: LogLine = lines[0]!;
  assert.equal(line.level, 50, "logged as an error");
  assert.equal(line.reqId, error.details.requestId);
  assert.equal(line.url, "/v1/projects/default/functions");
  assert.equal(line.err?.message, "disk on fire");
  assert.match(line.err?.stack ?? "", /disk on fire\n\s+at /);
});
