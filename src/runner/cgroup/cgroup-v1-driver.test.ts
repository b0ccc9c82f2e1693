/**
 * Against the real host's cgroup v1 hierarchies (Kiln's CI machine kind: hybrid, run as root). Every test
 * skips where `detectCgroupDriver` finds no v1 driver, and removes its cgroups and processes even on failure.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { CgroupLimits } from "./cgroup-driver.js";
import { kernelCgroupFs, readProcs } from "./cgroup-fs.js";
import { CgroupV1Driver, type CgroupV1, type CgroupV1DriverOptions } from "./cgroup-v1-driver.js";
import { detectCgroupDriver } from "./detect-cgroup-driver.js";
import { pollUntil } from "./poll-until.js";

const MiB = 1024 * 1024;
const childEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin" }; // clean: NODE_EXTRA_CA_CERTS alone adds ~65 ms

const detection = await detectCgroupDriver();
const hostDriver = detection.driver instanceof CgroupV1Driver ? detection.driver : null;
const skipReason = `no cgroup v1 driver on this host: ${detection.reason}`;

/** The host's v1 driver, or a variant of it (e.g. without the cgroup2 twin); null → the test is skipped. */
function driverFor(t: TestContext, overrides: Partial<CgroupV1DriverOptions> = {}): CgroupV1Driver | null {
  if (hostDriver === null) {
    t.skip(skipReason);
    return null;
  }
  return new CgroupV1Driver({
    parentDirs: hostDriver.parentDirs,
    unifiedParentDir: hostDriver.unifiedParentDir,
    ...overrides,
  });
}

/** Creates a uniquely named cgroup that is killed and removed after the test, pass or fail. */
async function createCgroup(
  t: TestContext,
  driver: CgroupV1Driver,
  label: string,
  limits: CgroupLimits,
): Promise<CgroupV1> {
  const cgroup = await driver.create(`test-${label}-${process.pid}-${Date.now().toString(36)}`, limits);
  t.after(async () => {
    await cgroup.killAll().catch(() => {});
    await cgroup.remove();
  });
  return cgroup;
}

/** Spawns a child that waits for a line on stdin before it does anything, killed after the test. */
async function spawnGated(
  t: TestContext,
  command: string,
  args: string[],
): Promise<ChildProcess & { pid: number }> {
  const child = spawn(command, args, { env: childEnv, stdio: ["pipe", "ignore", "pipe"] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  await once(child, "spawn");
  if (child.pid === undefined) throw new Error(`${command} did not start`);
  return child as ChildProcess & { pid: number };
}

/** Resolves with how the child ended; rejects (the child is killed after the test) past `timeoutMs`. */
async function waitForExit(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return { code: child.exitCode, signal: child.signalCode };
  const timeout = AbortSignal.timeout(timeoutMs);
  const [code, signal] = (await once(child, "exit", { signal: timeout })) as [
    number | null,
    NodeJS.Signals | null,
  ];
  return { code, signal };
}

/** Alive = exists and is not a zombie (a killed orphan stays a zombie until its new parent reaps it). */
async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

test("writes the memory, memory+swap, pids and cpu limits to the v1 hierarchies", async (t) => {
  const driver = driverFor(t);
  if (driver === null) return;
  const cgroup = await createCgroup(t, driver, "limits", {
    memoryBytes: 64 * MiB,
    pidsMax: 8,
    cpuCores: 0.5,
  });
  const read = async (dir: string | undefined, file: string): Promise<string> => {
    assert.ok(dir !== undefined, `no directory for ${file}`);
    return (await readFile(join(dir, file), "utf8")).trim();
  };

  assert.equal(await read(cgroup.dirs.memory, "memory.limit_in_bytes"), String(64 * MiB));
  if (await kernelCgroupFs.exists(join(cgroup.dirs.memory, "memory.memsw.limit_in_bytes"))) {
    assert.equal(await read(cgroup.dirs.memory, "memory.memsw.limit_in_bytes"), String(64 * MiB));
  }
  assert.equal(await read(cgroup.dirs.pids, "pids.max"), "8");
  assert.equal(await read(cgroup.dirs.cpu, "cpu.cfs_period_us"), "100000");
  assert.equal(await read(cgroup.dirs.cpu, "cpu.cfs_quota_us"), "50000");
  assert.equal(await cgroup.readOomKills(), 0);
});

test("a process allocating 300 MB of Buffers under a 64 MB limit is OOM-killed and counted", async (t) => {
  const driver = driverFor(t);
  if (driver === null) return;
  const cgroup = await createCgroup(t, driver, "oom", { memoryBytes: 64 * MiB, pidsMax: 32 });
  const allocate = `process.stdin.once("data", () => {
    const kept = [];
    for (let i = 0; i < 300; i++) kept.push(Buffer.alloc(1024 * 1024, 1));
    console.error("survived with", kept.length, "MB");
    process.exit(0);
  });`;
  const child = await spawnGated(t, process.execPath, ["-e", allocate]);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await cgroup.addProcess(child.pid);

  const started = performance.now();
  child.stdin?.end("go\n");
  const exit = await waitForExit(child, 10_000);
  const elapsedMs = performance.now() - started;

  assert.equal(exit.signal, "SIGKILL", `exit ${JSON.stringify(exit)}, stderr: ${stderr}`);
  assert.ok((await cgroup.readOomKills()) >= 1, "the cgroup's oom_kill counter went up");
  const peakBytes = await cgroup.readMemoryPeakBytes();
  assert.ok(peakBytes > 32 * MiB && peakBytes <= 64 * MiB, `peak ${peakBytes} bytes`);
  await cgroup.resetMemoryPeak();
  assert.ok((await cgroup.readMemoryPeakBytes()) < peakBytes / 2, "a reset starts a new peak");
  t.diagnostic(
    `OOM-killed ${elapsedMs.toFixed(0)} ms after it began allocating; peak ${(peakBytes / MiB).toFixed(1)} MiB`,
  );
});

for (const variant of [
  { killMethod: "cgroup.kill", overrides: {} },
  { killMethod: "freezer", overrides: { unifiedParentDir: null } },
] as const) {
  test(`killAll (${variant.killMethod}) leaves no process alive, not even ones that called setsid`, async (t) => {
    const driver = driverFor(t, variant.overrides);
    if (driver === null) return;
    const cgroup = await createCgroup(t, driver, `setsid-${variant.killMethod}`, {
      memoryBytes: 256 * MiB,
      pidsMax: 64,
    });
    assert.equal(cgroup.killMethod, variant.killMethod);
    // 5 setsid sleepers, a setsid shell with two more (double fork), one plain sleeper, and the shell.
    const script = `read go
      for i in 1 2 3 4 5; do setsid sleep 1000 & done
      setsid sh -c 'sleep 1000 & sleep 1000 & wait' &
      sleep 1000 &
      wait`;
    const shell = await spawnGated(t, "sh", ["-c", script]);
    await cgroup.addProcess(shell.pid);
    shell.stdin?.end("go\n");
    const expected = 10;
    const listed = () => readProcs(kernelCgroupFs, join(cgroup.dirs.memory, "cgroup.procs"));
    const allStarted = await pollUntil(
      async () => (await listed()).length >= expected,
      performance.now() + 5000,
      5,
    );
    const pids = await listed();
    assert.ok(allStarted, `only ${pids.length} of ${expected} processes started`);

    const started = performance.now();
    await cgroup.killAll();
    const elapsedMs = performance.now() - started;

    const alive = [];
    for (const pid of pids) if (await isAlive(pid)) alive.push(pid);
    assert.deepEqual(alive, [], "survivors");
    for (const dir of Object.values(cgroup.dirs)) {
      assert.deepEqual(await readProcs(kernelCgroupFs, join(dir, "cgroup.procs")), [], `${dir} is empty`);
    }
    t.diagnostic(
      `killAll via ${variant.killMethod}: ${pids.length} processes gone in ${elapsedMs.toFixed(1)} ms`,
    );
  });
}

test("killAll also sweeps a process that is in the v1 hierarchies but missing from the cgroup2 twin", async (t) => {
  const driver = driverFor(t);
  if (driver === null) return;
  const cgroup = await createCgroup(t, driver, "twinless", { memoryBytes: 64 * MiB, pidsMax: 8 });
  if (cgroup.killMethod !== "cgroup.kill") {
    t.skip("no cgroup2 twin on this host");
    return;
  }
  const sleeper = await spawnGated(t, "sleep", ["1000"]);
  // A process that reached the v1 hierarchies but not the twin (e.g. moved in by something other than
  // addProcess): cgroup.kill cannot see it, so killAll must fall back to the freezer sweep.
  for (const dir of [cgroup.dirs.memory, cgroup.dirs.pids, cgroup.dirs.freezer]) {
    if (dir !== undefined) await kernelCgroupFs.writeText(join(dir, "cgroup.procs"), String(sleeper.pid));
  }
  await cgroup.killAll();
  const exit = await waitForExit(sleeper, 2000);
  assert.equal(exit.signal, "SIGKILL");
});

test("pids.max 8 holds a fork bomb to 8 processes", async (t) => {
  const driver = driverFor(t);
  if (driver === null) return;
  const cgroup = await createCgroup(t, driver, "forkbomb", { memoryBytes: 256 * MiB, pidsMax: 8 });
  const bomb = await spawnGated(t, "sh", ["-c", "read go; for i in $(seq 50); do sleep 5 & done; wait"]);
  let stderr = "";
  bomb.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await cgroup.addProcess(bomb.pid);
  bomb.stdin?.end("go\n");

  // Sample the kernel's count while the bomb goes off (bounded: 1.5 s or until the shell gives up).
  let mostProcesses = 0;
  const shellEnded = once(bomb, "exit");
  const deadline = performance.now() + 1500;
  while (performance.now() < deadline) {
    const current = Number((await readFile(join(cgroup.dirs.pids, "pids.current"), "utf8")).trim());
    mostProcesses = Math.max(mostProcesses, current);
    if (await Promise.race([shellEnded.then(() => true), sleep(5).then(() => false)])) break;
  }
  // pids.peak (Linux 6.1+) is the kernel's own high-water mark; sampling alone can miss a short peak.
  const peakPath = join(cgroup.dirs.pids, "pids.peak");
  if (await kernelCgroupFs.exists(peakPath)) {
    mostProcesses = Math.max(mostProcesses, Number((await readFile(peakPath, "utf8")).trim()));
  }
  const events = await readFile(join(cgroup.dirs.pids, "pids.events"), "utf8");
  const refusedForks = Number(/max (\d+)/.exec(events)?.[1] ?? 0);
  await cgroup.killAll();

  assert.ok(mostProcesses <= 8, `saw ${mostProcesses} processes`);
  assert.equal(mostProcesses, 8, "the bomb reached the limit (else this test proves nothing)");
  assert.ok(refusedForks > 0, `pids.events: ${events}`);
  t.diagnostic(
    `at most ${mostProcesses} processes, ${refusedForks} forks refused; shell said: ${stderr.trim().split("\n")[0]}`,
  );
});
