/** The invoke route over a real socket: a caller that goes away. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { deployPausedHello, startTestNode, testToken, type TestNode } from "./test-node.js";

let testNode: TestNode;
before(async () => {
  testNode = await startTestNode("invoke");
  await deployPausedHello(testNode);
});
after(() => testNode.close());

test("a cancel on disconnect that fails is logged, not left to end the node as an unhandled rejection", async () => {
  const { node } = testNode;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  const cancel = node.dispatcher.cancel.bind(node.dispatcher);
  node.dispatcher.cancel = () => Promise.reject(new Error("the database went away"));
  try {
    const caller = new AbortController();
    // `hello` is paused: the invocation waits for admission, and the caller leaves meanwhile.
    const answer = fetch(`${node.url}/v1/projects/default/functions/hello/invoke?cancelOnDisconnect=true`, {
      method: "POST",
      headers: { authorization: `Bearer ${testToken}`, "content-type": "application/json" },
      body: "{}",
      signal: caller.signal,
    });
    await sleep(50);
    caller.abort();
    await assert.rejects(answer);
    await sleep(500); // the admission budget (250 ms) runs out, and the refused cancel settles
    assert.deepEqual(unhandled, []);
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200);
  } finally {
    node.dispatcher.cancel = cancel;
    process.off("unhandledRejection", onUnhandled);
  }
});
