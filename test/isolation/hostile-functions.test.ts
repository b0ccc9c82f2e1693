/**
 * Hostile functions under `strong` isolation: each attempt at harm is denied or contained, and the node
 * still runs the next task. Skipped where the host cannot give strong isolation (failed instead under
 * KILN_REQUIRE_STRONG_ISOLATION=1, as in CI).
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { packFunction, type Task } from "../../src/client/index.js";
import { repoRoot, startKilnServer, type KilnServer } from "../e2e/kiln-server.js";
import { expectStillServing, runTask, sandboxProcesses, strongTest } from "./strong-test.js";

let server: KilnServer;
let strong = false;

function run(payload: unknown, functionName = "hostile"): Promise<Task> {
  return runTask(server, functionName, payload);
}

describe("hostile functions under strong isolation", { timeout: 180_000 }, () => {
  before(async () => {
    server = await startKilnServer();
    strong = (await server.client.health()).isolation === "strong";
    if (!strong) return;
    const dir = path.join(repoRoot, "test", "isolation", "functions", "hostile");
    await server.client.deployFunction("hostile", await packFunction(dir));
  });
  after(() => server.stop());

  strongTest(
    "1 GB of Buffers under a 256 MB tier ends out_of_memory within 2 s",
    () => strong,
    async () => {
      const task = await run({ action: "buffers" });
      assert.equal(task.state, "out_of_memory");
      assert.equal(task.failure?.kind, "out_of_memory");
      const ranMs = Date.parse(task.finishedAt!) - Date.parse(task.startedAt!);
      assert.ok(ranMs < 2000, `ran ${ranMs} ms`);
      await expectStillServing(server);
    },
  );

  strongTest(
    "a growing JS heap ends out_of_memory",
    () => strong,
    async () => {
      const task = await run({ action: "heap" });
      assert.equal(task.state, "out_of_memory");
      await expectStillServing(server);
    },
  );

  strongTest(
    "an infinite loop ends timed_out within 100 ms of its deadline",
    () => strong,
    async () => {
      const created = await server.client.createTask({
        function: "hostile",
        payload: { action: "loop" },
        timeoutS: 1,
      });
      const task = await server.client.waitForTask(created.id, { timeoutS: 30 });
      assert.equal(task.state, "timed_out");
      const lateMs = Date.parse(task.finishedAt!) - (Date.parse(task.startedAt!) + 1000);
      assert.ok(lateMs >= 0 && lateMs <= 100, `ended ${lateMs} ms after the deadline`);
      await expectStillServing(server);
    },
  );

  strongTest(
    "a fork bomb is stopped by the pids limit and its processes end with the task",
    () => strong,
    async () => {
      const task = await run({ action: "fork-bomb" });
      assert.equal(task.state, "succeeded");
      const { started, refused } = task.result as { started: number; refused: number };
      // spawn() reports EAGAIN asynchronously: `started` counts calls, `refused` the forks the kernel refused.
      assert.ok(refused > 0, `started ${started}, refused ${refused}`);
      assert.deepEqual(await sandboxProcesses("sleep 30"), []);
      await expectStillServing(server);
    },
  );

  strongTest(
    "children that setsid to outlive their task do not survive it",
    () => strong,
    async () => {
      assert.equal((await run({ action: "setsid-children" })).state, "succeeded");
      assert.deepEqual(await sandboxProcesses("sleep 1000"), []);
      const next = await run({ action: "list-processes" });
      const others = (next.result as string[]).filter((cmdline) => !cmdline.includes("harness.js"));
      assert.deepEqual(
        others.filter((cmdline) => cmdline.includes("sleep")),
        [],
      );
    },
  );

  strongTest(
    "the server's database, token and environment cannot be read",
    () => strong,
    async () => {
      const serverPid = server.pid;
      const task = await run({
        action: "read",
        paths: [
          path.join(server.dataDir, "kiln.db"),
          path.join(server.dataDir, "admin-token"),
          `/proc/${serverPid}/environ`,
          "/etc/shadow",
          path.join(server.dataDir, "sandboxes"),
        ],
      });
      for (const [file, outcome] of Object.entries(task.result as Record<string, string>)) {
        assert.notEqual(outcome, "allowed", `${file} was readable`);
      }
    },
  );

  strongTest(
    "nothing outside /tmp can be written",
    () => strong,
    async () => {
      const task = await run({
        action: "write",
        paths: ["/usr/evil", "/kiln/code/index.js", "/etc/evil", "/evil"],
      });
      for (const [file, outcome] of Object.entries(task.result as Record<string, string>)) {
        assert.notEqual(outcome, "allowed", `${file} was writable`);
      }
    },
  );

  strongTest(
    "the server's port and PostgreSQL on 127.0.0.1 cannot be reached",
    () => strong,
    async () => {
      const port = Number(new URL(server.url).port);
      const task = await run({
        action: "connect",
        targets: [
          { host: "127.0.0.1", port },
          { host: "127.0.0.1", port: 5432 },
        ],
      });
      for (const [target, outcome] of Object.entries(task.result as Record<string, string>)) {
        assert.notEqual(outcome, "connected", `${target} was reachable`);
      }
    },
  );

  strongTest(
    "filling /tmp stops at its cap",
    () => strong,
    async () => {
      const task = await run({ action: "fill-tmp", mb: 200 });
      const { result, writtenMb } = task.result as { result: string; writtenMb: number };
      assert.equal(result, "ENOSPC");
      assert.ok(writtenMb < 100, `wrote ${writtenMb} MB`);
      await expectStillServing(server);
    },
  );

  strongTest(
    "a sandbox runs as a non-root uid with no capabilities and NoNewPrivs",
    () => strong,
    async () => {
      const { uid, capEff, noNewPrivs } = (await run({ action: "status" })).result as {
        uid: string[];
        capEff: string;
        noNewPrivs: string;
      };
      assert.ok(
        uid.every((id) => Number(id) >= 20_000),
        `uid ${uid.join(" ")}`,
      );
      assert.equal(capEff, "0000000000000000");
      assert.equal(noNewPrivs, "1");
    },
  );

  strongTest(
    "a child does not outlive its task by ending a thread an earlier task left, to keep the counts even",
    () => strong,
    async () => {
      // A function of its own: run one task at a time, it has one sandbox, so both tasks share it.
      const dir = path.join(repoRoot, "test", "isolation", "functions", "hostile");
      await server.client.deployFunction("thread-swap", await packFunction(dir));
      assert.equal((await run({ action: "linger-thread" }, "thread-swap")).result, "lingering");
      assert.equal((await run({ action: "swap-thread-for-child" }, "thread-swap")).result, "swapped");
      assert.deepEqual(await sandboxProcesses("sleep 1001"), []);
    },
  );

  strongTest(
    "a task's /tmp is empty when it starts, even after the previous task wrote there",
    () => strong,
    async () => {
      const wrote = await run({ action: "write-tmp" });
      assert.equal(wrote.state, "succeeded", JSON.stringify(wrote.failure));
      assert.deepEqual(wrote.result, ["left-behind"]);
      assert.deepEqual((await run({ action: "list-tmp" })).result, []);
    },
  );
});

describe("a node killed with kill -9", { timeout: 120_000 }, () => {
  test("leaves no cgroup behind once a node starts again", async (t) => {
    const pidsParent = "/sys/fs/cgroup/pids/kiln";
    const node = await startKilnServer();
    t.after(() => node.stop());
    if (
      (await node.client.health()).isolation !== "strong" ||
      (await readdir(pidsParent).catch(() => null)) === null
    ) {
      return t.skip("needs strong isolation on a cgroup v1 host");
    }
    await node.client.deployFunction(
      "hostile",
      await packFunction(path.join(repoRoot, "test", "isolation", "functions", "hostile")),
    );
    const task = await node.client.createTask({ function: "hostile", payload: { action: "ping" } });
    assert.equal((await node.client.waitForTask(task.id, { timeoutS: 30 })).state, "succeeded");
    const killedPid = node.pid;
    const ofKilledNode = async () =>
      (await readdir(pidsParent)).filter((name) => name.startsWith(`kiln-${killedPid}-`));
    assert.ok((await ofKilledNode()).length > 0, "the node had a sandbox cgroup");
    await node.kill9();
    await node.restart();
    assert.deepEqual(await ofKilledNode(), []);
  });
});
