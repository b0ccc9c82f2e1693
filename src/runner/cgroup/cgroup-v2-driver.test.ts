import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { CgroupV2Driver, type CgroupV2DriverOptions } from "./cgroup-v2-driver.js";
import { FakeCgroupKernel, type FakeCgroupKernelOptions } from "./fake-cgroup-kernel.js";

const MiB = 1024 * 1024;

/** A fake cgroup2 tree with Kiln's parent at `<root>/kiln`, removed after the test. */
async function setUp(
  t: TestContext,
  kernelOptions: FakeCgroupKernelOptions = {},
  driverOptions: Partial<CgroupV2DriverOptions> = {},
): Promise<{ kernel: FakeCgroupKernel; driver: CgroupV2Driver }> {
  const kernel = await FakeCgroupKernel.create(kernelOptions);
  t.after(() => kernel.dispose());
  // What detectCgroupDriver arranges: the server's own cgroup (here the root) hands controllers down.
  const available = kernel.options.controllers.filter((controller) =>
    ["memory", "pids", "cpu"].includes(controller),
  );
  await kernel.writeText(kernel.path("cgroup.subtree_control"), available.map((c) => `+${c}`).join(" "));
  kernel.writes.length = 0;
  const driver = new CgroupV2Driver({ parentDir: kernel.path("kiln"), fs: kernel, ...driverOptions });
  return { kernel, driver };
}

test("creates a sandbox cgroup with its memory, swap, OOM-group, pids and cpu limits", async (t) => {
  const { kernel, driver } = await setUp(t);
  const cgroup = await driver.create("task-1", { memoryBytes: 256 * MiB, pidsMax: 64, cpuCores: 1.5 });

  assert.equal(cgroup.name, "task-1");
  assert.equal(await kernel.read("kiln", "cgroup.subtree_control"), "cpu memory pids");
  assert.equal(await kernel.read("kiln", "task-1", "memory.max"), String(256 * MiB));
  assert.equal(await kernel.read("kiln", "task-1", "memory.swap.max"), "0");
  assert.equal(await kernel.read("kiln", "task-1", "memory.oom.group"), "1");
  assert.equal(await kernel.read("kiln", "task-1", "pids.max"), "64");
  assert.equal(await kernel.read("kiln", "task-1", "cpu.max"), "150000 100000");
});

test("enables the controllers in the parent only once for many cgroups", async (t) => {
  const { kernel, driver } = await setUp(t);
  await Promise.all([
    driver.create("a", { memoryBytes: 128 * MiB, pidsMax: 8 }),
    driver.create("b", { memoryBytes: 128 * MiB, pidsMax: 8 }),
  ]);
  const subtreeWrites = kernel.writes.filter((write) => write.path === "kiln/cgroup.subtree_control");
  assert.deepEqual(subtreeWrites, [{ path: "kiln/cgroup.subtree_control", value: "+memory +pids +cpu" }]);
});

test("leaves the CPU unlimited when no cpuCores are given", async (t) => {
  const { kernel, driver } = await setUp(t);
  await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  assert.equal(await kernel.read("kiln", "task-1", "cpu.max"), "max 100000");
  assert.ok(!kernel.writes.some((write) => write.path.endsWith("cpu.max")));
});

test("works without swap accounting (no memory.swap.max) and without memory.peak", async (t) => {
  const { kernel, driver } = await setUp(t, { swap: false, memoryPeak: false });
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  assert.equal(await kernel.exists(kernel.path("kiln", "task-1", "memory.swap.max")), false);
  assert.equal(await cgroup.readMemoryPeakBytes(), 0);
  await cgroup.resetMemoryPeak(); // a no-op, not an error
});

test("rejects a CPU limit when the cpu controller is not delegated, and creates nothing", async (t) => {
  const { kernel, driver } = await setUp(t, { controllers: ["memory", "pids"] });
  await assert.rejects(
    driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16, cpuCores: 1 }),
    /cpu controller is not available/,
  );
  assert.equal(await kernel.exists(kernel.path("kiln", "task-1")), false);
  await driver.create("task-2", { memoryBytes: 128 * MiB, pidsMax: 16 }); // memory and pids still work
});

test("rejects creation when the memory controller is not available to Kiln's parent", async (t) => {
  const { driver } = await setUp(t, { controllers: ["cpu", "pids"] });
  await assert.rejects(driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 }), /memory controller/);
});

test("removes a half-made cgroup when a limit cannot be written", async (t) => {
  const { kernel, driver } = await setUp(t, { failingFiles: ["pids.max"] });
  await assert.rejects(driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 }), /EINVAL/);
  assert.equal(await kernel.exists(kernel.path("kiln", "task-1")), false);
});

test("rejects unsafe names and impossible limits", async (t) => {
  const { driver } = await setUp(t);
  await assert.rejects(driver.create("../escape", { memoryBytes: MiB, pidsMax: 1 }), /invalid cgroup name/);
  await assert.rejects(driver.create("a/b", { memoryBytes: MiB, pidsMax: 1 }), /invalid cgroup name/);
  await assert.rejects(driver.create("ok", { memoryBytes: 0, pidsMax: 1 }), /memoryBytes/);
  await assert.rejects(driver.create("ok", { memoryBytes: MiB, pidsMax: 1.5 }), /pidsMax/);
  await assert.rejects(driver.create("ok", { memoryBytes: MiB, pidsMax: 1, cpuCores: -1 }), /cpuCores/);
});

test("moves a process into the cgroup through cgroup.procs", async (t) => {
  const { kernel, driver } = await setUp(t);
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  await cgroup.addProcess(4242);
  assert.equal(await kernel.read("kiln", "task-1", "cgroup.procs"), "4242");
  assert.match(await kernel.read("kiln", "task-1", "cgroup.events"), /populated 1/);
});

test("reads the OOM kill count from memory.events and the peak from memory.peak", async (t) => {
  const { kernel, driver } = await setUp(t);
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  assert.equal(await cgroup.readOomKills(), 0);
  await kernel.setOomKills("kiln/task-1", 3);
  assert.equal(await cgroup.readOomKills(), 3);

  await kernel.writeText(kernel.path("kiln", "task-1", "memory.peak"), String(100 * MiB));
  assert.equal(await cgroup.readMemoryPeakBytes(), 100 * MiB);
  await cgroup.resetMemoryPeak();
  assert.equal(await cgroup.readMemoryPeakBytes(), 0);
});

test("killAll writes cgroup.kill and resolves only once cgroup.events says populated 0", async (t) => {
  const { kernel, driver } = await setUp(t, { killDelayMs: 40 });
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  await cgroup.addProcess(4242);

  const started = performance.now();
  await cgroup.killAll();
  const elapsedMs = performance.now() - started;

  assert.ok(kernel.writes.some((write) => write.path === "kiln/task-1/cgroup.kill" && write.value === "1"));
  assert.match(await kernel.read("kiln", "task-1", "cgroup.events"), /populated 0/);
  assert.ok(elapsedMs >= 35, `resolved after ${elapsedMs} ms, before the kernel emptied the cgroup`);
  assert.ok(elapsedMs < 1000, `took ${elapsedMs} ms`);
});

test("killAll rejects when the cgroup is still populated after the kill timeout", async (t) => {
  const { driver } = await setUp(t, { kill: "hangs" }, { killTimeoutMs: 80 });
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  await cgroup.addProcess(4242);

  const started = performance.now();
  await assert.rejects(cgroup.killAll(), /still has processes 80 ms after cgroup.kill/);
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs >= 75 && elapsedMs < 1000, `gave up after ${elapsedMs} ms`);
});

test("remove deletes the empty cgroup and tolerates a second call", async (t) => {
  const { kernel, driver } = await setUp(t);
  const cgroup = await driver.create("task-1", { memoryBytes: 128 * MiB, pidsMax: 16 });
  await cgroup.addProcess(4242);
  await cgroup.killAll();
  await cgroup.remove();
  assert.equal(await kernel.exists(kernel.path("kiln", "task-1")), false);
  await cgroup.remove();
});
