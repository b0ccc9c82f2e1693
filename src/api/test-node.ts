/** An in-process node for the API tests: a temp data directory, a known token, requests via `inject`. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { packFunction } from "../client/pack-function.js";
import { loadConfig } from "../config/config.js";
import { startNode, type RunningNode } from "../main.js";
import type { InjectOptions } from "fastify";

export const testToken = "test-token";

export interface TestNode {
  node: RunningNode;
  /** A temp directory of the test's own (the node's data directory is inside it). */
  root: string;
  close(): Promise<void>;
}

export async function startTestNode(label: string): Promise<TestNode> {
  const root = await mkdtemp(path.join(tmpdir(), `kiln-api-${label}-`));
  const node = await startNode(
    loadConfig({ dataDir: path.join(root, "data"), port: 0, token: testToken }, {}),
  );
  return {
    node,
    root,
    async close() {
      await node.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Deploys `hello` (returns its payload) paused: tasks a route creates stay queued, no sandbox starts. */
export async function deployPausedHello({ node, root }: TestNode): Promise<void> {
  const dir = path.join(root, "hello");
  await mkdir(dir);
  await writeFile(path.join(dir, "kiln.json"), JSON.stringify({ paused: true }));
  await writeFile(path.join(dir, "index.js"), "export default async (payload) => payload;\n");
  const deployed = await node.app.inject({
    method: "PUT",
    url: "/v1/projects/default/functions/hello",
    headers: { authorization: `Bearer ${testToken}`, "content-type": "application/gzip" },
    payload: Buffer.from(await packFunction(dir)),
  });
  assert.equal(deployed.statusCode, 201, deployed.body);
}

/** An answer to `callApi`: status, raw body and the body parsed. */
export interface ApiAnswer {
  status: number;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

/** Calls the node's API in process with `token` (default: the admin token). */
export async function callApi(
  node: RunningNode,
  options: InjectOptions,
  token = testToken,
): Promise<ApiAnswer> {
  const response = await node.app.inject({
    ...options,
    headers: { authorization: `Bearer ${token}`, ...options.headers },
  });
  return { status: response.statusCode, body: response.body, json: <T>() => response.json<T>() };
}

/**
 * Deploys a function that sleeps `payload.sleepMs` (if given) and returns its payload, with `manifest`
 * as its kiln.json; resolves with the deploy's answer.
 */
export async function deploySleeper(
  { node, root }: TestNode,
  project: string,
  name: string,
  manifest: object = {},
): Promise<ApiAnswer> {
  const dir = await mkdtemp(path.join(root, `${project}-${name}-`));
  await writeFile(path.join(dir, "kiln.json"), JSON.stringify(manifest));
  await writeFile(
    path.join(dir, "index.js"),
    "export default async (payload) => { await new Promise((r) => setTimeout(r, payload?.sleepMs ?? 0)); return payload; };\n",
  );
  return callApi(node, {
    method: "PUT",
    url: `/v1/projects/${project}/functions/${name}`,
    headers: { "content-type": "application/gzip" },
    payload: Buffer.from(await packFunction(dir)),
  });
}
