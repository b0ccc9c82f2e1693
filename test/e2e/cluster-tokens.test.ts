/**
 * Tokens kept in the store work on every node sharing it: one created through node A is accepted by
 * node B (whose own admin token differs), and revoking it through A makes B refuse it within a second.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startCluster } from "./cluster-nodes.js";
import type { KilnServer } from "./kiln-server.js";

async function call(node: KilnServer, token: string, method: string, route: string, body?: unknown) {
  const response = await fetch(`${node.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, text: await response.text() };
}

test(
  "a token created through node A works on node B, and revoking it through A makes B refuse it within 1 s",
  { timeout: 120_000 },
  async (t) => {
    const cluster = await startCluster(t, [{ maxWorkers: 0 }, { maxWorkers: 0 }]);
    if (cluster === null) return;
    const [a, b] = cluster.nodes;
    assert.ok(a !== undefined && b !== undefined);
    assert.notEqual(a.token, b.token, "the nodes were meant to have admin tokens of their own");
    assert.equal((await call(b, a.token, "GET", "/v1/projects")).status, 401, "B accepted A's admin token");

    const created = await call(a, a.token, "POST", "/v1/tokens", {
      name: "reader",
      role: "read",
      project: "default",
    });
    assert.equal(created.status, 201, created.text);
    const { token, secret } = JSON.parse(created.text) as { token: { id: string }; secret: string };
    assert.equal((await call(b, secret, "GET", "/v1/projects/default")).status, 200);

    const revoked = await call(a, a.token, "DELETE", `/v1/tokens/${token.id}`);
    assert.equal(revoked.status, 200, revoked.text);
    const revokedAt = performance.now();
    let answer;
    do answer = await call(b, secret, "GET", "/v1/projects/default");
    while (answer.status === 200 && performance.now() - revokedAt < 3000);
    const tookMs = performance.now() - revokedAt;
    assert.equal(answer.status, 401, answer.text);
    assert.ok(tookMs < 1000, `B refused the revoked token only after ${tookMs.toFixed(0)} ms`);
  },
);
