/**
 * What a strong sandbox may do to the host and to other functions: the system calls it may not make,
 * the uids it gets (never another sandbox's, never another node's), its env kept off every command line,
 * and starts that fail without leaking a cgroup or a uid.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { packFunction, type Task } from "../../src/client/index.js";
import { repoRoot, startKilnServer, type KilnServer } from "../e2e/kiln-server.js";
import { strongTest } from "./strong-test.js";

const functionDir = path.join(repoRoot, "test", "isolation", "functions", "host-boundary");

async function deploy(server: KilnServer, name: string): Promise<void> {
  await server.client.deployFunction(name, await packFunction(functionDir));
}

async function run(server: KilnServer, payload: unknown, name = "boundary"): Promise<Task> {
  const task = await server.client.createTask({ function: name, payload });
  return server.client.waitForTask(task.id, { timeoutS: 60 });
}

async function uidOf(server: KilnServer): Promise<number> {
  const task = await run(server, { action: "uid" });
  assert.equal(task.state, "succeeded", JSON.stringify(task.failure));
  return task.result as number;
}

/** Every process on the host whose command line contains `text`. */
async function commandLinesContaining(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((entry) => /^\d+$/.test(entry))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text)) found.push(`${pid} ${cmdline.replaceAll("\0", " ").slice(0, 200)}`);
  }
  return found;
}

/** The node's cgroups (`kiln-<pid>-…`) in every cgroup hierarchy. */
async function countCgroupsOf(pid: number): Promise<number> {
  let count = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries.filter((e) => e.isDirectory())) {
      if (entry.name.startsWith(`kiln-${pid}-`)) count += 1;
      else if (depth < 6) await walk(path.join(dir, entry.name), depth + 1);
    }
  };
  await walk("/sys/fs/cgroup", 0);
  return count;
}

/** The count once sandboxes that just ended have had their cgroups removed (it stops changing). */
async function settledCgroupCount(pid: number): Promise<number> {
  let count = await countCgroupsOf(pid);
  for (let round = 0; round < 20; round += 1) {
    await sleep(250);
    const again = await countCgroupsOf(pid);
    if (again === count) return count;
    count = again;
  }
  return assert.fail(`the node's cgroups kept changing (${count})`);
}

describe("a strong sandbox and the host", { timeout: 300_000 }, () => {
  let server: KilnServer;
  let strong = false;

  before(async () => {
    server = await startKilnServer();
    strong = (await server.client.health()).isolation === "strong";
    if (strong) await deploy(server, "boundary");
  });
  after(() => server.stop());

  strongTest(
    "keyrings, ptrace, mount, user namespaces, bpf, perf and userfaultfd are refused; ordinary work runs",
    () => strong,
    async () => {
      const task = await run(server, { action: "syscalls" });
      assert.equal(task.state, "succeeded", JSON.stringify(task.failure));
      const { refused, ordinary } = task.result as { refused: Record<string, string>; ordinary: string[] };
      assert.deepEqual(refused, {
        add_key: "EPERM",
        keyctl: "EPERM",
        ptrace: "EPERM",
        mount: "EPERM",
        unshare: "EPERM",
        bpf: "EPERM",
        perf_event_open: "EPERM",
        userfaultfd: "EPERM",
        io_uring_setup: "EPERM",
      });
      assert.deepEqual(ordinary, ["thread", "child", "file"], "threads, child processes and /tmp still work");
    },
  );

  strongTest(
    "two sandboxes started one after the other run as different uids",
    () => strong,
    async () => {
      const first = await uidOf(server);
      const second = await uidOf(server);
      assert.notEqual(first, second, "the second sandbox got the first one's uid");
    },
  );

  strongTest(
    "two nodes started at the same time on the host hand out disjoint uids",
    () => strong,
    async () => {
      const nodes = await Promise.all([startKilnServer(), startKilnServer()]);
      try {
        await Promise.all(nodes.map((node) => deploy(node, "boundary")));
        const uids = await Promise.all(
          nodes.map(async (node) => [await uidOf(node), await uidOf(node), await uidOf(node)]),
        );
        const [first = [], second = []] = uids;
        assert.deepEqual(
          first.filter((uid) => second.includes(uid)),
          [],
          `node 1 gave ${first.join(", ")}; node 2 gave ${second.join(", ")}`,
        );
      } finally {
        await Promise.all(nodes.map((node) => node.stop()));
      }
    },
  );

  strongTest(
    "a function's env value appears on no command line on the host while its task runs",
    () => strong,
    async () => {
      const secret = `kiln-secret-${randomBytes(16).toString("hex")}`;
      await server.client.updateFunction("boundary", { env: { KILN_PROBE_SECRET: secret } });
      const created = await server.client.createTask({
        function: "boundary",
        payload: { action: "hold-secret", seconds: 3 },
      });
      for (let polls = 0; (await server.client.getTask(created.id)).state !== "running"; polls += 1) {
        assert.ok(polls < 400, "the task did not start within 20 s");
        await sleep(50);
      }
      await sleep(500);
      assert.deepEqual(await commandLinesContaining(secret), []);
      const task = await server.client.waitForTask(created.id, { timeoutS: 30 });
      assert.equal(task.result, createHash("sha256").update(secret).digest("hex"), "the sandbox got the env");
    },
  );

  strongTest(
    "50 starts with an env too large for exec fail clearly and leak no cgroup and no uid",
    () => strong,
    async () => {
      await deploy(server, "too-big");
      // 100 values of 32 KiB: more than exec takes (2 MiB under the usual 8 MiB stack limit).
      const env = Object.fromEntries(
        Array.from({ length: 100 }, (_, i) => [`BIG_${i}`, "x".repeat(32_768)] as const),
      );
      await server.client.updateFunction("too-big", { env });
      const uidBefore = await uidOf(server);
      const cgroupsBefore = await settledCgroupCount(server.pid);
      const created = await server.client.createTasks(
        Array.from({ length: 50 }, () => ({ function: "too-big", payload: { action: "uid" } })),
      );
      for (const { id } of created) {
        const task = await server.client.waitForTask(id, { timeoutS: 60 });
        assert.equal(task.state, "failed");
        assert.match(task.failure?.message ?? "", /env is too large to start a process/);
      }
      assert.equal(await settledCgroupCount(server.pid), cgroupsBefore, "a cgroup was left behind");
      // Single-use sandboxes are started ahead, so the next task may run on one started before or just
      // after `uidBefore`'s; 50 starts that each took a uid would put it 50 further on.
      const uidAfter = await uidOf(server);
      assert.ok(uidAfter <= uidBefore + 2, `the failed starts used up uids (${uidBefore} → ${uidAfter})`);
    },
  );
});
