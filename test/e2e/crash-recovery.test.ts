/** A `kill -9` of the server in the middle of a large batch, and the restart on the same data directory. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Task, TaskInput } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { listProcessesUsing, startKilnServer, type KilnServer } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";
import {
  describeSandbox,
  isSandboxAlive,
  listAncestors,
  listDescendants,
  readHostProcess,
  waitForSandboxGone,
  waitForSandboxIdentity,
  type HostProcess,
} from "./sandbox-process.js";
import { listAllTasks, waitUntilNoneUnfinished } from "./task-listing.js";

const taskCount = 10_000;

test(
  "after kill -9 mid-batch and a restart, all 10,000 tasks succeed, the running ones after a lost attempt, and no sandbox of the killed server remains",
  { timeout: 210_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    await deployTestFunction(server.client, "sleep-briefly");
    await deployTestFunction(server.client, "block-event-loop");

    // A sandbox whose event loop is blocked cannot notice its server die. Under process isolation only the
    // restarted server's reaping ends it before its two minutes are up; under strong isolation the kernel
    // ends it with its server (bwrap runs with --die-with-parent).
    const blocker = await server.client.createTask({
      function: "block-event-loop",
      payload: { blockMs: 120_000 },
    });
    const blockedSandbox = await waitForSandboxIdentity(server.client, blocker.id, 30_000);
    t.diagnostic(`the blocked sandbox is ${describeSandbox(blockedSandbox)}`);

    // 20 ms per task keeps the sandboxes busy, so some tasks are running whenever the kill comes.
    const inputs: TaskInput[] = Array.from({ length: taskCount }, (_, n) => ({
      function: "sleep-briefly",
      payload: { n, sleepMs: 20 },
    }));
    const created = await server.client.createTasks(inputs);
    assert.equal(created.length, taskCount);
    await waitForSucceeded(server, "sleep-briefly", 500, 60_000);

    const runningBeforeKill = (
      await server.client.listTasks({ function: "sleep-briefly", state: "running", limit: 1000 })
    ).tasks;
    const killedServerPid = server.pid;
    // Every process the server started, at any depth: under strong isolation a sandbox is a bwrap, bwrap's
    // init in the sandbox's pid namespace, and the harness under it, as the sandbox's uid.
    const oldProcesses = await listDescendants(killedServerPid);
    // The server starts no process but its sandboxes (bwrap takes its arguments from a pipe, so its
    // command line does not name the data directory).
    const oldSandboxes = oldProcesses.filter((p) => p.ppid === killedServerPid);
    // Under process isolation the blocked sandbox is itself the server's child; under strong isolation,
    // the bwrap it runs under is.
    const blockedLineage = [
      blockedSandbox.host.pid,
      ...(await listAncestors(blockedSandbox.host.pid)).map((p) => p.pid),
    ];
    assert.ok(
      oldSandboxes.some((p) => blockedLineage.includes(p.pid)),
      "the blocked sandbox is not a child of the server",
    );
    await server.kill9();
    if (blockedSandbox.ownUid) {
      const goneAfterMs = await waitForSandboxGone(blockedSandbox, 2_000);
      t.diagnostic(`the blocked (strong) sandbox died ${goneAfterMs} ms after its server was killed`);
    } else {
      assert.ok(await isSandboxAlive(blockedSandbox), "the blocked sandbox died with its server");
    }

    await server.restart();
    assert.notEqual(server.pid, killedServerPid);

    // Only the new server and its own sandboxes may use the data directory now, and no process the killed
    // server started may be alive (a pid may have been reused: the start time tells).
    const isNewServers = async (pid: number) =>
      pid === server.pid || (await listAncestors(pid)).some((ancestor) => ancestor.pid === server.pid);
    const listLeftovers = async () => {
      const leftovers: string[] = [];
      for (const p of await listProcessesUsing(server.dataDir)) {
        if (!(await isNewServers(p.pid))) leftovers.push(`${p.pid} ${p.cmdline}`);
      }
      for (const old of oldProcesses) {
        const now = await readHostProcess(old.pid);
        if (now !== null && now.state !== "Z" && isSameProcess(now, old)) {
          leftovers.push(`${now.pid} (uid ${now.uid}) ${now.cmdline}`);
        }
      }
      return leftovers;
    };
    let leftovers = await listLeftovers();
    for (const deadline = Date.now() + 5_000; leftovers.length > 0 && Date.now() < deadline;) {
      await sleep(100);
      leftovers = await listLeftovers();
    }
    assert.deepEqual(leftovers, [], "processes of the killed server are still there after the restart");
    assert.equal(await isSandboxAlive(blockedSandbox), false, "the blocked sandbox survived the restart");

    // A new server on a new port: from here on, its client.
    const { client } = server;
    await waitUntilNoneUnfinished(client, "sleep-briefly", 150_000);
    const tasks = await listAllTasks(client, { function: "sleep-briefly" });
    assert.equal(tasks.length, taskCount, "tasks were lost or duplicated");
    assert.deepEqual(new Set(tasks.map((task) => task.id)), new Set(created.map((task) => task.id)));
    assert.deepEqual(countStates(tasks), { succeeded: taskCount });

    const withLostAttempt = tasks.filter((task) =>
      task.attempts.some((attempt) => attempt.outcome === "lost"),
    );
    t.diagnostic(
      `killed with ${runningBeforeKill.length} tasks running and ${oldSandboxes.length} sandboxes; ` +
        `${withLostAttempt.length} tasks have a lost attempt`,
    );
    if (runningBeforeKill.length > 0) {
      assert.ok(
        withLostAttempt.length > 0,
        `${runningBeforeKill.length} tasks were running just before the kill, but none has a lost attempt`,
      );
    }
    for (const task of withLostAttempt) {
      const lost = task.attempts.find((attempt) => attempt.outcome === "lost");
      assert.equal(lost?.failure?.kind, "lost");
      assert.equal(task.attempts.at(-1)?.outcome, "succeeded", `task ${task.id} was not rerun`);
    }

    const blocked = await client.waitForTask(blocker.id, { timeoutS: 30 });
    assert.equal(blocked.state, "succeeded");
    assert.deepEqual(
      blocked.attempts.map((attempt) => attempt.outcome),
      ["lost", "succeeded"],
    );
  },
);

/** Resolves once at least `count` tasks of the function have succeeded. */
async function waitForSucceeded(
  server: KilnServer,
  functionName: string,
  count: number,
  timeoutMs: number,
): Promise<void> {
  await pollUntil(
    `${count} tasks of ${functionName} to succeed`,
    async () => {
      const page = await server.client.listTasks({
        function: functionName,
        state: "succeeded",
        limit: count,
      });
      return page.tasks.length >= count ? true : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

function isSameProcess(a: HostProcess, b: HostProcess): boolean {
  return a.pid === b.pid && a.startTime === b.startTime;
}

function countStates(tasks: readonly Task[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const task of tasks) counts[task.state] = (counts[task.state] ?? 0) + 1;
  return counts;
}
