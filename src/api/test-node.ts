/** An in-process node for the API tests: a temp data directory, a known token, requests via `inject`. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { packFunction } from "../client/pack-function.js";
import { loadConfig } from "../config/config.js";
import { startNode, type RunningNode } from "../main.js";

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
