import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { CgroupV1Driver } from "./cgroup-v1-driver.js";
import { CgroupV2Driver } from "./cgroup-v2-driver.js";
import { detectCgroupDriver } from "./detect-cgroup-driver.js";
import { FakeCgroupKernel, type FakeCgroupKernelOptions } from "./fake-cgroup-kernel.js";

/** A fake pure-cgroup2 host whose /proc/self/cgroup puts this process in `ownPath`. */
async function fakeHost(
  t: TestContext,
  ownPath: string,
  options: FakeCgroupKernelOptions = {},
): Promise<{ kernel: FakeCgroupKernel; procSelfCgroupPath: string }> {
  const kernel = await FakeCgroupKernel.create(options);
  t.after(() => kernel.dispose());
  const procDir = await mkdtemp(join(tmpdir(), "kiln-fake-proc-"));
  t.after(() => rm(procDir, { recursive: true, force: true }));
  const procSelfCgroupPath = join(procDir, "cgroup");
  await writeFile(procSelfCgroupPath, `0::${ownPath}\n`);
  return { kernel, procSelfCgroupPath };
}

test("picks the v2 driver on a pure cgroup2 host and leaves no probe cgroup behind", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/");
  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
  });

  assert.ok(driver instanceof CgroupV2Driver, reason);
  assert.equal(driver.version, "v2");
  assert.equal(driver.parentDir, kernel.path("kiln"));
  assert.match(reason, /cgroup v2: sandboxes under .*kiln \(memory, pids, cpu; kill via cgroup.kill\)/);
  const leftovers = (await readdir(kernel.path("kiln"), { withFileTypes: true })).filter((e) =>
    e.isDirectory(),
  );
  assert.deepEqual(leftovers, []);
  assert.ok(kernel.writes.some((write) => /^kiln\/kiln-probe-[^/]+\/cgroup\.kill$/.test(write.path)));
});

test("moves the server's processes into a leaf so its own cgroup can delegate controllers", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/system.slice/kiln.service");
  // systemd with Delegate=yes: the service cgroup gets the controllers and holds the server process.
  await kernel.writeText(kernel.path("cgroup.subtree_control"), "+memory +pids +cpu");
  await kernel.makeDir(kernel.path("system.slice"));
  await kernel.writeText(kernel.path("system.slice", "cgroup.subtree_control"), "+memory +pids +cpu");
  await kernel.makeDir(kernel.path("system.slice", "kiln.service"));
  await kernel.writeText(kernel.path("system.slice", "kiln.service", "cgroup.procs"), "4242");

  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
  });

  assert.ok(driver instanceof CgroupV2Driver, reason);
  assert.equal(driver.parentDir, kernel.path("system.slice", "kiln.service", "kiln"));
  assert.match(reason, /moved 1 process\(es\)/);
  assert.equal(await kernel.read("system.slice", "kiln.service", "kiln-server", "cgroup.procs"), "4242");
  assert.equal(await kernel.read("system.slice", "kiln.service", "cgroup.procs"), "");
  assert.equal(
    await kernel.read("system.slice", "kiln.service", "cgroup.subtree_control"),
    "cpu memory pids",
  );
});

test("refuses to move the server's processes when told not to", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/service");
  await kernel.writeText(kernel.path("cgroup.subtree_control"), "+memory +pids");
  await kernel.makeDir(kernel.path("service"));
  await kernel.writeText(kernel.path("service", "cgroup.procs"), "4242");

  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
    moveProcessesToLeaf: false,
  });
  assert.equal(driver, null);
  assert.match(reason, /holds processes/);
  assert.equal(await kernel.read("service", "cgroup.procs"), "4242");
});

test("finds no driver on a cgroup2 host without the memory controller", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/", { controllers: ["cpu", "io", "pids"] });
  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
  });
  assert.equal(driver, null);
  assert.match(reason, /no memory controller/);
});

test("finds no driver when the kernel has no cgroup.kill", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/", { cgroupKill: false });
  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
  });
  assert.equal(driver, null);
  assert.match(reason, /no cgroup\.kill/);
  assert.deepEqual(
    (await readdir(kernel.path("kiln"), { withFileTypes: true })).filter((e) => e.isDirectory()),
    [],
    "the probe cgroup is removed",
  );
});

test("says 'not root' when the cgroup tree is not writable for a non-root server", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/", { readOnly: true });
  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.root,
    procSelfCgroupPath,
    fs: kernel,
    uid: 1000,
  });
  assert.equal(driver, null);
  assert.match(reason, /cannot create a probe cgroup: EACCES.*not root: uid 1000/);
});

test("finds no driver where there is no cgroup filesystem", async (t) => {
  const { kernel, procSelfCgroupPath } = await fakeHost(t, "/");
  const { driver, reason } = await detectCgroupDriver({
    cgroupRoot: kernel.path("missing"),
    procSelfCgroupPath,
    fs: kernel,
  });
  assert.equal(driver, null);
  assert.match(reason, /no cgroup filesystem/);
});

test("finds no driver on a v1 host without a memory hierarchy", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "kiln-fake-v1-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const procSelfCgroupPath = join(root, "proc-self-cgroup");
  await writeFile(procSelfCgroupPath, "2:pids:/\n1:freezer:/\n0::/\n");
  const { driver, reason } = await detectCgroupDriver({ cgroupRoot: root, procSelfCgroupPath });
  assert.equal(driver, null);
  assert.match(reason, /no memory controller/);
});

test("on this host, finds a working driver or explains why not", async (t) => {
  const started = performance.now();
  const { driver, reason } = await detectCgroupDriver();
  const elapsedMs = performance.now() - started;
  t.diagnostic(`${driver?.version ?? "none"} in ${elapsedMs.toFixed(1)} ms: ${reason}`);
  if (driver === null) {
    assert.notEqual(reason, "");
    return;
  }
  if (driver instanceof CgroupV1Driver) {
    const probes = (await readdir(driver.parentDirs.memory)).filter((name) => name.startsWith("kiln-probe-"));
    assert.ok(
      !probes.some((name) => name.includes(`-${process.pid}-`)),
      `probe left behind: ${probes.join(", ")}`,
    );
  }
});
