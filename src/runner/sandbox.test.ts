import assert from "node:assert/strict";
import { test } from "node:test";
import type { FromSandbox, ToSandbox } from "../sandbox/protocol.js";
import type { SandboxExit, SandboxProcess, SandboxReset } from "./sandbox-backend.js";
import { Sandbox } from "./sandbox.js";

/** A sandbox process driven by the test: it plays the harness's part of the channel. */
function fakeProcess(reset: () => Promise<SandboxReset> = () => Promise.resolve({ reusable: true })) {
  const sent: ToSandbox[] = [];
  let deliver: (message: FromSandbox, frameBytes: number) => void = () => {};
  let malformed: (reason: string) => void = () => {};
  let exit: (exit: SandboxExit) => void = () => {};
  let resets = 0;
  const process: SandboxProcess = {
    pid: 1,
    channel: {
      send: (message) => sent.push(message),
      onMessage: (listener) => (deliver = listener),
      onMalformed: (listener) => (malformed = listener),
      onExit: (listener) => (exit = listener),
    },
    resetBetweenTasks: () => {
      resets += 1;
      return reset();
    },
    kill: () => exit({ code: null, signal: "SIGKILL", stderrTail: "" }),
    wasOutOfMemory: () => Promise.resolve(false),
    dispose: () => Promise.resolve(),
  };
  return {
    process,
    sent,
    send: (message: FromSandbox, frameBytes = 100) => deliver(message, frameBytes),
    malformed: (reason: string) => malformed(reason),
    get resets() {
      return resets;
    },
  };
}

const lane = { project: "p", functionName: "f", revision: "r" };
const limits = { id: "s", lane, maxResultBytes: 1024, maxLogBytes: 1024 };
const task = { taskId: "t1", attempt: 1, payload: "{}", deadline: Date.now() + 60_000 };
const done = (result: string) =>
  ({ type: "done", taskId: "t1", result, failure: null, log: "", rssBytes: 1, reusable: true }) as const;

async function readySandbox(fake: ReturnType<typeof fakeProcess>): Promise<Sandbox> {
  const sandbox = new Sandbox(limits, fake.process);
  fake.send({ type: "ready" });
  await sandbox.ready;
  return sandbox;
}

test("a sandbox is reset from outside at ready and after each task, before it is idle again", async () => {
  const fake = fakeProcess();
  const sandbox = await readySandbox(fake);
  assert.equal(fake.resets, 1);
  const outcome = sandbox.run(task, () => {});
  fake.send(done('{"ok":true}'));
  assert.equal(sandbox.state, "busy", "not idle while the reset runs");
  assert.deepEqual(await outcome, {
    type: "done",
    result: '{"ok":true}',
    failure: null,
    log: "",
    rssBytes: 1,
  });
  assert.equal(fake.resets, 2);
  assert.equal(sandbox.state, "idle");
  assert.equal(sandbox.reusable, true);
});

test("a sandbox whose reset found something left is not reused", async () => {
  let reusable = true;
  const fake = fakeProcess(() => Promise.resolve({ reusable }));
  const sandbox = await readySandbox(fake);
  reusable = false;
  const outcome = sandbox.run(task, () => {});
  fake.send(done("1"));
  await outcome;
  assert.equal(sandbox.reusable, false);
});

for (const [name, result, message] of [
  ["not JSON", "{not json", /not valid JSON/],
  ["nested too deep", "[".repeat(100_000) + "]".repeat(100_000), /deeper than 100 levels/],
] as const) {
  test(`a done whose result is ${name} fails the task, not retried`, async () => {
    const fake = fakeProcess();
    const sandbox = new Sandbox({ ...limits, maxResultBytes: 1 << 20 }, fake.process);
    fake.send({ type: "ready" });
    await sandbox.ready;
    const outcome = sandbox.run(task, () => {});
    fake.send(done(result));
    const ended = await outcome;
    assert.equal(ended.type, "done");
    assert.equal(ended.type === "done" ? ended.result : "?", null);
    assert.match(ended.type === "done" ? (ended.failure?.message ?? "") : "", message);
    assert.equal(ended.type === "done" ? ended.failure?.retryable : true, false);
  });
}

test("a malformed message ends the running task as malformed and kills the sandbox", async () => {
  const fake = fakeProcess();
  const sandbox = await readySandbox(fake);
  const outcome = sandbox.run(task, () => {});
  fake.malformed("it is not JSON");
  assert.deepEqual(await outcome, {
    type: "malformed",
    reason: "the sandbox sent a malformed message: it is not JSON",
    log: "",
  });
  await sandbox.exited;
  assert.equal(sandbox.state, "dead");
});

test("progress past the bound of one task ends it as malformed", async () => {
  const fake = fakeProcess();
  const sandbox = await readySandbox(fake);
  const outcome = sandbox.run(task, () => {});
  const progress = { type: "progress", taskId: "t1", percent: 1 } as const;
  for (let i = 0; i < 1000 && sandbox.state === "busy"; i++) fake.send(progress, 64 * 1024);
  const ended = await outcome;
  assert.equal(ended.type, "malformed");
  assert.match(ended.type === "malformed" ? ended.reason : "", /bytes to the node during one task/);
});
