/**
 * `npm run soak`: a node under `strong` isolation runs normal tasks while hostile ones (memory hogs,
 * endless loops, fork bombs, leftover processes, crashes, garbage on the channel, floods of output) hit it,
 * for `KILN_SOAK_MINUTES` (10). It fails when a normal task fails, when the node's RSS goes over
 * `KILN_SOAK_MAX_RSS_MB` (400), or when sandboxes leak: cgroups, sandbox-uid processes, sandbox
 * directories and the node's file descriptors are counted before and after, once idle sandboxes retire.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { packFunction, type Task } from "../../src/client/index.js";
import { deployTestFunction } from "../e2e/deploy-test-function.js";
import { isSandboxUid, repoRoot, startKilnServer, type KilnServer } from "../e2e/kiln-server.js";
import { pollUntil } from "../e2e/poll-until.js";
import { listProcessesByUid } from "../e2e/sandbox-process.js";

const minutes = Number(process.env.KILN_SOAK_MINUTES ?? 10);
const maxRssMb = Number(process.env.KILN_SOAK_MAX_RSS_MB ?? 400);
const normalInFlight = 64;
const hostileInFlight = 3;
const hostileActions = [
  "buffers",
  "loop",
  "fork-bomb",
  "leftovers",
  "crash",
  "garbage-frame",
  "flood-channel",
  "big-log",
  "late-rejection",
];

interface Counts {
  cgroups: number;
  sandboxProcesses: number;
  sandboxDirs: number;
  fds: number;
}

async function count(server: KilnServer): Promise<Counts> {
  const cgroupNames = new Set<string>();
  for (const line of (await readFile(`/proc/${server.pid}/cgroup`, "utf8")).split("\n")) {
    const own = line.split(":")[2];
    if (own === undefined) continue;
    for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"]) {
      const parent = path.join(root, own.replace(/\/kiln-server$/, ""), "kiln");
      for (const name of await readdir(parent).catch(() => [])) {
        if (name.startsWith(`kiln-${server.pid}-`)) cgroupNames.add(name);
      }
    }
  }
  return {
    cgroups: cgroupNames.size,
    sandboxProcesses: await countSandboxProcesses(server),
    sandboxDirs: (await readdir(path.join(server.dataDir, "sandboxes")).catch(() => [])).length,
    fds: await countFdsBesidesHttp(server),
  };
}

/**
 * The node's open descriptors, less its HTTP connections (the load's keep-alive sockets come and go
 * with the client): a sandbox's channel, pipes or files left open would count.
 */
async function countFdsBesidesHttp(server: KilnServer): Promise<number> {
  const port = Number(new URL(server.url).port);
  const httpInodes = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    const lines = (await readFile(`/proc/${server.pid}/net/${table}`, "utf8").catch(() => "")).split("\n");
    for (const line of lines.slice(1)) {
      const fields = line.trim().split(/\s+/);
      const localPort = parseInt(fields[1]?.split(":")[1] ?? "", 16);
      if (localPort === port && fields[9] !== undefined) httpInodes.add(fields[9]);
    }
  }
  let count = 0;
  for (const fd of await readdir(`/proc/${server.pid}/fd`)) {
    const target = await readlink(`/proc/${server.pid}/fd/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode === undefined || !httpInodes.has(inode)) count += 1;
  }
  return count;
}

/** Live processes of sandbox uids in this node's cgroups (other nodes on the host may run sandboxes). */
async function countSandboxProcesses(server: KilnServer): Promise<number> {
  let count = 0;
  for (const p of await listProcessesByUid(isSandboxUid)) {
    const cgroups = await readFile(`/proc/${p.pid}/cgroup`, "utf8").catch(() => "");
    if (p.state !== "Z" && cgroups.includes(`/kiln-${server.pid}-`)) count += 1;
  }
  return count;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const server = await startKilnServer({
    args: ["--isolation", "strong"],
    maxWorkers: 8,
    env: { KILN_SANDBOX_IDLE_MS: "3000" },
  });
  let failed = false;
  try {
    await deployTestFunction(server.client, "echo");
    const hostileDir = path.join(repoRoot, "test", "soak", "functions", "soak-hostile");
    await server.client.deployFunction("soak-hostile", await packFunction(hostileDir));
    const before = await count(server);
    const rssBefore = await rssMb(server.pid);
    console.log(
      `soak: ${minutes} min, node RSS ${rssBefore.toFixed(0)} MB, before: ${JSON.stringify(before)}`,
    );

    const endAt = Date.now() + minutes * 60_000;
    let normalDone = 0;
    const normalFailures: Task[] = [];
    const hostileStates = new Map<string, number>();
    let maxRss = rssBefore;
    const normalWorker = async (worker: number) => {
      for (let i = 0; Date.now() < endAt; i++) {
        const created = await server.client.createTask({ function: "echo", payload: { worker, i } });
        const task = await server.client.waitForTask(created.id, { timeoutS: 60 });
        if (task.state === "succeeded") normalDone += 1;
        else normalFailures.push(task);
      }
    };
    // Each hostile worker runs one hostile task at a time, the actions in turn: the hostile load keeps
    // up with what the node can run instead of piling up a backlog.
    const hostileWorker = async (worker: number) => {
      for (let i = worker; Date.now() < endAt; i++) {
        const action = hostileActions[i % hostileActions.length] as string;
        const created = await server.client.createTask({ function: "soak-hostile", payload: { action } });
        const task = await server.client.waitForTask(created.id, { timeoutS: 120 });
        const key = `${action}:${task.state}`;
        hostileStates.set(key, (hostileStates.get(key) ?? 0) + 1);
      }
    };
    const sampler = async () => {
      while (Date.now() < endAt) {
        maxRss = Math.max(maxRss, await rssMb(server.pid));
        await sleep(1000);
      }
    };
    const progress = setInterval(
      () => console.log(`soak: ${normalDone} normal tasks done, max RSS ${maxRss.toFixed(0)} MB`),
      30_000,
    );
    try {
      await Promise.all([
        ...Array.from({ length: normalInFlight }, (_, worker) => normalWorker(worker)),
        ...Array.from({ length: hostileInFlight }, (_, worker) => hostileWorker(worker)),
        sampler(),
      ]);
    } catch (error) {
      const state = server.running ? "still runs" : "is gone";
      throw new Error(
        `soak: the load failed and the node ${state}: ${String(error)}\n${server.log.slice(-4000)}`,
      );
    } finally {
      clearInterval(progress);
    }

    // Idle sandboxes retire after KILN_SANDBOX_IDLE_MS: then everything a sandbox held must be back.
    const after = await pollUntil(
      "the idle sandboxes to retire",
      async () => {
        const counts = await count(server);
        return counts.cgroups <= before.cgroups && counts.sandboxDirs <= before.sandboxDirs
          ? counts
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    ).catch(() => count(server));
    const rssAfter = await rssMb(server.pid);
    console.log(`soak: hostile outcomes ${JSON.stringify(Object.fromEntries([...hostileStates].sort()))}`);
    console.log(
      `soak: ${normalDone} normal tasks succeeded, ${normalFailures.length} failed; node RSS max ` +
        `${maxRss.toFixed(0)} MB (bound ${maxRssMb}), after ${rssAfter.toFixed(0)} MB; after: ${JSON.stringify(after)}`,
    );
    const problems = [
      ...normalFailures
        .slice(0, 5)
        .map((task) => `normal task ${task.id} ended ${task.state}: ${task.failure?.message}`),
      ...(maxRss > maxRssMb ? [`node RSS reached ${maxRss.toFixed(0)} MB, over ${maxRssMb} MB`] : []),
      ...(after.cgroups > before.cgroups ? [`${after.cgroups - before.cgroups} cgroups leaked`] : []),
      ...(after.sandboxProcesses > before.sandboxProcesses
        ? [`${after.sandboxProcesses - before.sandboxProcesses} sandbox-uid processes left`]
        : []),
      ...(after.sandboxDirs > before.sandboxDirs
        ? [`${after.sandboxDirs - before.sandboxDirs} sandbox dirs left`]
        : []),
      // A few come and go (the database, the log); a leak grows with the tasks.
      ...(after.fds > before.fds + 16 ? [`file descriptors grew from ${before.fds} to ${after.fds}`] : []),
    ];
    if (normalFailures.length > 5)
      problems.push(`… and ${normalFailures.length - 5} more normal tasks failed`);
    if (problems.length > 0) {
      failed = true;
      console.error(`soak: FAILED\n  ${problems.join("\n  ")}`);
      const [first] = normalFailures;
      if (first !== undefined) {
        console.error(
          `soak: the log of ${first.id}:\n${(await server.client.getTaskLog(first.id)).slice(-2000)}`,
        );
      }
      console.error(`soak: the end of the node's log:\n${server.log.slice(-4000)}`);
    } else {
      console.log("soak: passed");
    }
  } finally {
    await server.stop();
  }
  process.exitCode = failed ? 1 : 0;
}

await main().catch((error: unknown) => {
  console.error(`soak: FAILED\n${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
