/**
 * The channel between a node and its sandboxes, and the end of a task, under `strong` isolation: what a
 * function sends on its channel cannot crash or bloat the node nor poison reads, and what a task leaves
 * behind (processes, files, errors, hooks) does not reach the next task. Skipped where the host cannot
 * give strong isolation.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { packFunction, type Task } from "../../src/client/index.js";
import { repoRoot, startKilnServer, type KilnServer } from "../e2e/kiln-server.js";
import { listProcessesByUid } from "../e2e/sandbox-process.js";
import { expectStillServing, runTask, sandboxProcesses, strongTest } from "./strong-test.js";

let server: KilnServer;
let strong = false;

function run(payload: unknown, functionName = "hostile"): Promise<Task> {
  return runTask(server, functionName, payload);
}

/** A field of the server process's /proc status, in MiB (VmRSS, VmHWM). */
async function readServerMemoryMb(field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${server.pid}/status`, "utf8");
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) / 1024;
}

describe(
  "the channel to a sandbox and the end of a task, under strong isolation",
  { timeout: 180_000 },
  () => {
    before(async () => {
      server = await startKilnServer();
      strong = (await server.client.health()).isolation === "strong";
      if (!strong) return;
      for (const name of ["hostile", "exec-background"]) {
        const dir = path.join(repoRoot, "test", "isolation", "functions", name);
        await server.client.deployFunction(name, await packFunction(dir));
      }
    });
    after(() => server.stop());

    strongTest(
      "a line that is not a frame ends that task crashed and the node keeps serving",
      () => strong,
      async () => {
        const task = await run({ action: "channel-garbage" });
        assert.equal(task.state, "failed");
        assert.equal(task.failure?.kind, "crashed");
        assert.match(task.failure?.message ?? "", /the sandbox sent a malformed message/);
        assert.equal(task.attempts.length, 1, "a malformed message is not retried");
        await expectStillServing(server);
      },
    );

    strongTest(
      "400 MiB sent without a frame end do not grow the node",
      () => strong,
      async () => {
        const task = await run({ action: "channel-flood", mb: 400 });
        assert.equal(task.state, "failed");
        assert.equal(task.failure?.kind, "crashed");
        // The server starts near 100 MB; a node that buffered the flood peaked above 400 MB.
        const peakMb = await readServerMemoryMb("VmHWM");
        assert.ok(peakMb < 250, `the server's peak RSS is ${peakMb} MB`);
        await expectStillServing(server);
      },
    );

    for (const [name, payload] of [
      ["not valid JSON", { action: "forge-done", result: "{not json" }],
      ["nested 100,000 deep", { action: "forge-deep-done", depth: 100_000 }],
    ] as const) {
      strongTest(
        `a forged done with a result ${name} fails that task, and reads still answer`,
        () => strong,
        async () => {
          const task = await run(payload);
          assert.equal(task.state, "failed");
          assert.equal(task.failure?.kind, "handler_error");
          assert.equal(task.failure?.retryable, false);
          assert.equal(task.result ?? null, null);
          assert.equal((await server.client.getTask(task.id)).id, task.id);
          const page = await server.client.listTasks({ function: "hostile" });
          assert.ok(page.tasks.some((listed) => listed.id === task.id));
          await expectStillServing(server);
        },
      );
    }

    strongTest(
      "a detached loop that overrode process.kill is gone before the next task",
      () => strong,
      async () => {
        assert.equal((await run({ action: "leftover-loop" })).state, "succeeded");
        assert.deepEqual(await sandboxProcesses("while :; do sleep 1; done"), []);
        const next = await run({ action: "list-processes" });
        const loops = (next.result as string[]).filter((cmdline) => cmdline.includes("while :"));
        assert.deepEqual(loops, []);
      },
    );

    strongTest(
      "a sandbox left with 20,000 files in /tmp is replaced, not emptied file by file by the node",
      () => strong,
      async () => {
        const task = await run({ action: "many-files", count: 20_000 });
        assert.equal(task.state, "succeeded", JSON.stringify(task.failure));
        const uid = task.result as number;
        const deadline = Date.now() + 10_000;
        while ((await listProcessesByUid((other) => other === uid)).some((p) => p.state !== "Z")) {
          assert.ok(Date.now() < deadline, `the sandbox of uid ${uid} is still alive 10 s later`);
          await sleep(50);
        }
        assert.deepEqual((await run({ action: "list-tmp" })).result, []);
      },
    );

    strongTest(
      "a file left in the I/O folder is gone before the next task",
      () => strong,
      async () => {
        const wrote = await run({ action: "io-leftover" });
        assert.deepEqual(wrote.result, ["left-behind"]);
        assert.deepEqual((await run({ action: "list-io" })).result, []);
      },
    );

    strongTest(
      "links a task leaves pointing out of the sandbox are removed, not followed",
      () => strong,
      async () => {
        const hostDir = await mkdtemp(path.join(tmpdir(), "kiln-link-target-"));
        try {
          await writeFile(path.join(hostDir, "keep"), "a host file");
          const wrote = await run({ action: "link-out", target: hostDir });
          assert.deepEqual(wrote.result, ["dir", "link-out"]);
          assert.deepEqual((await run({ action: "list-tmp" })).result, []);
          assert.deepEqual((await run({ action: "list-io" })).result, []);
          assert.deepEqual(await readdir(hostDir), ["keep"]);
        } finally {
          await rm(hostDir, { recursive: true, force: true });
        }
      },
    );

    strongTest(
      "hooks on process.send and message events neither stall nor see the next task",
      () => strong,
      async () => {
        const before = (await run({ action: "count" })).result as number;
        assert.equal((await run({ action: "hook-channel" })).state, "succeeded");
        const next = await run({ action: "ping", note: "secret-of-the-next-task" });
        assert.equal(next.state, "succeeded", JSON.stringify(next.failure));
        assert.deepEqual((await run({ action: "seen-by-hook" })).result, []);
        // The hooked sandbox was the one reused: otherwise the check above proves nothing.
        assert.equal((await run({ action: "count" })).result, before + 1);
      },
    );

    strongTest(
      "a promise rejected after the handler returned does not fail the next task",
      () => strong,
      async () => {
        assert.equal((await run({ action: "late-rejection" })).state, "succeeded");
        const next = await run({ action: "wait-then-pong", ms: 300 });
        assert.equal(next.state, "succeeded", JSON.stringify(next.failure));
        await expectStillServing(server);
      },
    );

    strongTest(
      "an exec command that leaves a child holding stdout ends succeeded when it exits",
      () => strong,
      async () => {
        const task = await run({}, "exec-background");
        assert.equal(task.state, "succeeded", JSON.stringify(task.failure));
        assert.equal(task.result, "started");
        const ranMs = Date.parse(task.finishedAt!) - Date.parse(task.startedAt!);
        assert.ok(ranMs < 2000, `ran ${ranMs} ms`);
        assert.deepEqual(await sandboxProcesses("sleep 1000"), []);
      },
    );
  },
);
