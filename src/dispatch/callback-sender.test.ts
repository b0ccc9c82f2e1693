/**
 * Callback delivery against real receivers on this machine: a redirect is not followed, the answer's
 * body is not read, and receivers in the node's own network are refused unless the operator allows them.
 */
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { test, type TestContext } from "node:test";
import type { Task } from "../domain/task.js";
import { createLogger } from "../logger.js";
import type { DueCallback, Store } from "../store/store.js";
import { refusedCallbackAddress } from "./callback-address.js";
import { CallbackSender } from "./callback-sender.js";

interface Outcome {
  delivered: boolean;
  retryAt: Date | null;
}

const task = {
  id: "task-1",
  project: "default",
  functionName: "hello",
  state: "succeeded",
  result: "ok",
  failure: null,
  attempts: [],
  createdAt: new Date(),
  startedAt: null,
  finishedAt: null,
} as unknown as Task;

/** Delivers one callback to `url` through a store that holds only it; resolves with what was recorded. */
function deliverOnce(url: string, allowPrivateAddresses: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    let due: DueCallback[] = [{ task, url, attempts: 0 }];
    const store = {
      claimDueCallbacks: () => {
        const claimed = due;
        due = [];
        return Promise.resolve(claimed);
      },
      nextCallbackAt: () => Promise.resolve(null),
      callbackSecret: () => Promise.resolve("s"),
      recordCallbackAttempt: (_taskId: string, outcome: Outcome) => {
        sender.stop();
        resolve(outcome);
        return Promise.resolve();
      },
    } as unknown as Store;
    const sender = new CallbackSender({
      store,
      retryBaseMs: 1000,
      maxAttempts: 5,
      allowPrivateAddresses,
      logger: createLogger("silent"),
    });
    sender.wake();
  });
}

/** A receiver on all interfaces that counts its requests and answers with `handle`. */
async function startReceiver(
  t: TestContext,
  handle: (response: http.ServerResponse) => void,
): Promise<{ port: number; requests: () => number }> {
  let requests = 0;
  const server = http.createServer((request, response) => {
    requests++;
    request.resume();
    handle(response);
  });
  await new Promise<void>((resolve) => server.listen(0, resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, requests: () => requests };
}

test("a receiver that redirects is not followed: the delivery failed and is retried later", async (t) => {
  const target = await startReceiver(t, (response) => response.writeHead(200).end());
  const redirecting = await startReceiver(t, (response) =>
    response.writeHead(302, { location: `http://127.0.0.1:${target.port}/elsewhere` }).end(),
  );
  const outcome = await deliverOnce(`http://127.0.0.1:${redirecting.port}/hook`, true);
  assert.equal(outcome.delivered, false, "a 3xx is not a delivery");
  assert.ok(outcome.retryAt !== null, "retried like any failed delivery");
  assert.equal(redirecting.requests(), 1);
  assert.equal(target.requests(), 0, "the redirect's target was never called");
});

test("a receiver's answer body is not read: an endless body does not hold the delivery", async (t) => {
  const endless = await startReceiver(t, (response) => {
    response.writeHead(200, { "content-type": "application/octet-stream" });
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => {
      while (!response.destroyed && response.write(chunk));
      if (!response.destroyed) response.once("drain", pump);
    };
    pump();
  });
  const startedMs = Date.now();
  const outcome = await deliverOnce(`http://127.0.0.1:${endless.port}/hook`, true);
  assert.equal(outcome.delivered, true);
  assert.ok(Date.now() - startedMs < 5_000, `took ${Date.now() - startedMs} ms`);
});

test("a receiver at a loopback address is refused at delivery unless private addresses are allowed", async (t) => {
  const receiver = await startReceiver(t, (response) => response.writeHead(200).end());
  const refused = await deliverOnce(`http://127.0.0.1:${receiver.port}/hook`, false);
  assert.equal(refused.delivered, false);
  assert.equal(receiver.requests(), 0, "nothing reached the loopback receiver");
  const allowed = await deliverOnce(`http://127.0.0.1:${receiver.port}/hook`, true);
  assert.equal(allowed.delivered, true);
  assert.equal(receiver.requests(), 1);
});

test("a host name that resolves to a private address is refused after its lookup", async (t) => {
  const name = hostname();
  const addresses = await lookup(name, { all: true }).catch(() => []);
  if (addresses.length === 0 || addresses.some(({ address }) => refusedCallbackAddress(address) === null)) {
    t.skip(`${name} does not resolve to private addresses only here`);
    return;
  }
  const receiver = await startReceiver(t, (response) => response.writeHead(200).end());
  const outcome = await deliverOnce(`http://${name}:${receiver.port}/hook`, false);
  assert.equal(outcome.delivered, false);
  assert.equal(receiver.requests(), 0, `${name} (${addresses[0]!.address}) was called`);
});
