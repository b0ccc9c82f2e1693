/** Callback URLs: the outcome reaches the receiver, signed, even when the receiver was down at first. */
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { createClient, type KilnClient } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";

interface Delivery {
  status: number;
  body: string;
  signature: string;
}

/** Verifies `t=<ms>,v1=<hex>` the way a receiver would. */
function verify(secret: string, signature: string, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature);
  if (match === null) return false;
  const expected = createHmac("sha256", secret).update(`${match[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, "hex"));
}

/**
 * A receiver on 127.0.0.1 that records every delivery and answers the n-th (from 0) with `statusOf(n)`;
 * closed when the test ends.
 */
async function startReceiver(
  t: TestContext,
  statusOf: (n: number) => number,
): Promise<{ deliveries: Delivery[]; port: number }> {
  const deliveries: Delivery[] = [];
  const receiver = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const status = statusOf(deliveries.length);
      const signature = String(request.headers["kiln-signature"]);
      deliveries.push({ status, body: Buffer.concat(chunks).toString(), signature });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  return { deliveries, port: (receiver.address() as AddressInfo).port };
}

test(
  "a task's outcome is POSTed to its callback URL, signed, with retries while the receiver is down",
  { timeout: 60_000 },
  async (t) => {
    // Down for the first two deliveries.
    const { deliveries, port } = await startReceiver(t, (n) => (n < 2 ? 503 : 200));
    // The receiver listens on 127.0.0.1, which callbacks may reach only when the operator allows it.
    const server = await startKilnServer({ env: { KILN_CALLBACK_ALLOW_PRIVATE: "1" } });
    t.after(() => server.stop());
    await deployTestFunction(server.client, "echo");

    const task = await server.client.createTask({
      function: "echo",
      payload: { hello: "callback" },
      callbackUrl: `http://127.0.0.1:${port}/kiln-hook`,
    });
    await pollUntil(
      "the callback to be delivered",
      () => (deliveries.some((d) => d.status === 200) ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 50,
      },
    );
    assert.deepEqual(
      deliveries.map((delivery) => delivery.status),
      [503, 503, 200],
      "retried after each failure, and not again once delivered",
    );
    const secret = await server.client.getCallbackSecret();
    for (const delivery of deliveries)
      assert.ok(verify(secret, delivery.signature, delivery.body), "signed with the project's key");
    assert.equal(verify("another secret", deliveries[2]!.signature, deliveries[2]!.body), false);
    const outcome = JSON.parse(deliveries[2]!.body) as { id: string; state: string };
    assert.equal(outcome.id, task.id);
    assert.equal(outcome.state, "succeeded");
  },
);

test(
  "each project signs its callbacks with a key of its own, kept in the store; a rotated key signs the next ones",
  { timeout: 60_000 },
  async (t) => {
    const { deliveries, port } = await startReceiver(t, () => 200);
    const server = await startKilnServer({ env: { KILN_CALLBACK_ALLOW_PRIVATE: "1" } });
    t.after(() => server.stop());
    const other = createClient({ url: server.url, token: server.token, project: "other" });
    await server.client.createProject("other");
    await deployTestFunction(server.client, "echo");
    await deployTestFunction(other, "echo");
    const callbackUrl = `http://127.0.0.1:${port}/kiln-hook`;
    const deliveryOf = async (client: KilnClient) => {
      const task = await client.createTask({ function: "echo", payload: 1, callbackUrl });
      return pollUntil("the callback", () => deliveries.find((delivery) => delivery.body.includes(task.id)), {
        timeoutMs: 30_000,
        intervalMs: 50,
      });
    };

    const defaultKey = await server.client.getCallbackSecret();
    const otherKey = await other.getCallbackSecret();
    assert.notEqual(defaultKey, otherKey);
    const fromDefault = await deliveryOf(server.client);
    const fromOther = await deliveryOf(other);
    assert.ok(verify(defaultKey, fromDefault.signature, fromDefault.body), "default signed with its key");
    assert.ok(verify(otherKey, fromOther.signature, fromOther.body), "other signed with its key");
    assert.equal(
      verify(defaultKey, fromOther.signature, fromOther.body),
      false,
      "other signed with default's key",
    );

    const rotated = await other.rotateCallbackSecret();
    assert.notEqual(rotated, otherKey);
    assert.equal(await other.getCallbackSecret(), rotated);
    // The sender reads a project's key again at most 5 s after it last did.
    await new Promise((resolve) => setTimeout(resolve, 5_100));
    const afterRotation = await deliveryOf(other);
    assert.ok(
      verify(rotated, afterRotation.signature, afterRotation.body),
      "not signed with the rotated key",
    );
  },
);
