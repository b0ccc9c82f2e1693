import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import type { FromSandbox } from "../sandbox/protocol.js";
import type { SandboxExit } from "./sandbox-backend.js";
import { createChildProcessChannel } from "./sandbox-channel.js";

/** A process that runs `script` with fd 3 as its channel, and what its node's end of the channel saw. */
async function runSandboxScript(script: string, maxFrameBytes = 64 * 1024) {
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe", "pipe"] });
  const channel = createChildProcessChannel(child, maxFrameBytes);
  const messages: FromSandbox[] = [];
  const malformed: string[] = [];
  channel.onMessage((message) => messages.push(message));
  channel.onMalformed((reason) => {
    malformed.push(reason);
    child.kill("SIGKILL");
  });
  const exit = await new Promise<SandboxExit>((resolve) => channel.onExit(resolve));
  return { messages, malformed, exit };
}

const frame = `const frame = (m) => { const b = Buffer.from(JSON.stringify(m)); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); return Buffer.concat([h, b]); };`;

test("valid frames arrive as parsed messages", async () => {
  const seen = await runSandboxScript(
    `${frame} require("fs").writeSync(3, Buffer.concat([frame({ type: "ready" }), frame({ type: "progress", taskId: "t", percent: 150 })]));`,
  );
  assert.deepEqual(seen.messages, [{ type: "ready" }, { type: "progress", taskId: "t", percent: 100 }]);
  assert.deepEqual(seen.malformed, []);
  assert.equal(seen.exit.code, 0);
});

test("a line that is not a frame is malformed, and the node's process lives on", async () => {
  const seen = await runSandboxScript(
    `require("fs").writeSync(3, "not json\\n"); setTimeout(() => {}, 5000);`,
  );
  assert.match(seen.malformed[0] ?? "", /over the limit/);
  assert.equal(seen.exit.signal, "SIGKILL");
});

test("a frame that is not JSON, or not a message, is malformed", async () => {
  const notJson = await runSandboxScript(
    `const b = Buffer.from("{oops"); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); require("fs").writeSync(3, Buffer.concat([h, b])); setTimeout(() => {}, 5000);`,
  );
  assert.match(notJson.malformed[0] ?? "", /not JSON/);
  const notMessage = await runSandboxScript(
    `${frame} require("fs").writeSync(3, frame({ type: "done", taskId: "t", result: 5, failure: null, log: "", rssBytes: 0 })); setTimeout(() => {}, 5000);`,
  );
  assert.match(notMessage.malformed[0] ?? "", /result string or a failure/);
});

test("a flood without a frame end is cut off at the bound", async () => {
  const seen = await runSandboxScript(
    `const fs = require("fs"); const h = Buffer.alloc(4); h.writeUInt32BE(60000); fs.writeSync(3, h); const c = Buffer.alloc(1 << 20, 120); try { for (let i = 0; i < 100; i++) fs.writeSync(3, c); } catch {} setTimeout(() => {}, 5000);`,
  );
  assert.equal(seen.malformed.length, 1);
  assert.equal(seen.exit.signal, "SIGKILL");
});

test("a process that could not be started ends as an exit, not as an error thrown in the node", async () => {
  const child = spawn("/nonexistent/kiln-sandbox", [], { stdio: ["ignore", "pipe", "pipe", "pipe"] });
  const channel = createChildProcessChannel(child, 1024);
  const exit = await new Promise<SandboxExit>((resolve) => channel.onExit(resolve));
  assert.match(exit.stderrTail, /did not start: .*ENOENT/);
});
