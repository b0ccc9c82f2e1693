/** The pool's budget rules, with real sandbox processes (`process` level) running the bench's no-op function. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { defaultSettings } from "../domain/function-settings.js";
import type { Lane } from "../domain/lane.js";
import { ProcessSandboxBackend } from "./process-sandbox-backend.js";
import { SandboxPool, type LaneConfig } from "./sandbox-pool.js";

const codeDir = fileURLToPath(new URL("../../../bench/functions/noop", import.meta.url));
const spec = { runtime: "node", entry: ["index.js"] } as const;
const pools: SandboxPool[] = [];
const dirs: string[] = [];

after(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function makePool(options: { memoryBudgetMb: number; longShare?: number; idleMs?: number }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-pool-test-"));
  dirs.push(dir);
  const idle: Lane[] = [];
  const pool = new SandboxPool({
    backend: new ProcessSandboxBackend(),
    dir,
    maxSandboxes: 16,
    memoryBudgetMb: options.memoryBudgetMb,
    longShare: options.longShare ?? 0.5,
    maxTasksPerSandbox: 1000,
    idleMs: options.idleMs ?? 60_000,
    maxResultBytes: 1 << 20,
    maxLogBytes: 1 << 20,
    revisions: { codeDir: () => Promise.resolve(codeDir) },
    onIdle: (lane) => idle.push(lane),
    onRoomFreed: () => {},
    onStartFailed: (_lane, reason) => assert.fail(reason),
  });
  pools.push(pool);
  return { pool, idle };
}

const lane = (functionName: string): Lane => ({ project: "p", functionName, revision: "r1" });
function config(
  overrides: { tierMb?: number; long?: boolean; settings?: Partial<LaneConfig["settings"]> } = {},
): LaneConfig {
  return {
    spec: { ...spec, entry: [...spec.entry] },
    tierMb: overrides.tierMb ?? 256,
    long: overrides.long ?? false,
    settings: { ...defaultSettings, ...overrides.settings },
  };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("sandboxes reserve their tier and the pool never grows past the memory budget", async () => {
  const { pool } = await makePool({ memoryBudgetMb: 600 });
  assert.equal(pool.grow(lane("a"), config()), true);
  assert.equal(pool.grow(lane("a"), config()), true);
  assert.equal(pool.grow(lane("a"), config()), false, "a third 256 MB sandbox would overcommit 600 MB");
  assert.deepEqual(pool.usage, { sandboxes: 2, reservedMb: 512, reservedLongMb: 0 });
  assert.equal(pool.grow(lane("b"), config({ tierMb: 128 })), false, "the smaller tier does not fit either");
});

test("sandboxes of long functions hold at most their share, and short ones still find room", async () => {
  const { pool } = await makePool({ memoryBudgetMb: 1024, longShare: 0.5 });
  const long = config({ long: true });
  assert.equal(pool.grow(lane("long"), long), true);
  assert.equal(pool.grow(lane("long"), long), true);
  assert.equal(pool.grow(lane("long"), long), false, "long sandboxes may hold half of 1024 MB");
  assert.equal(pool.grow(lane("short"), config()), true);
  assert.deepEqual(pool.usage, { sandboxes: 3, reservedMb: 768, reservedLongMb: 512 });
});

test("a full node stops an idle sandbox of another function to make room for a new one", async () => {
  const { pool, idle } = await makePool({ memoryBudgetMb: 256 });
  assert.equal(pool.grow(lane("a"), config()), true);
  await until(() => idle.length === 1);
  assert.equal(pool.grow(lane("b"), config()), false, "no room until the idle sandbox has exited");
  await until(() => pool.usage.sandboxes === 0);
  assert.equal(pool.grow(lane("b"), config()), true);
});

test("minWarm sandboxes are started ahead and outlive the idle timeout", async () => {
  const { pool, idle } = await makePool({ memoryBudgetMb: 4096, idleMs: 50 });
  const warm = config({ settings: { minWarm: 2 } });
  pool.keepWarm(lane("warm"), warm);
  await until(() => idle.length === 2);
  assert.equal(pool.idleCount(lane("warm")), 2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(pool.idleCount(lane("warm")), 2, "kept past several idle timeouts");
  const cold = config();
  pool.grow(lane("cold"), cold);
  await until(() => pool.idleCount(lane("cold")) === 1);
  await until(() => pool.idleCount(lane("cold")) === 0, 2000);
});

test("a single-use sandbox runs one task, and its replacement is started ahead", async () => {
  const { pool, idle } = await makePool({ memoryBudgetMb: 4096 });
  const once = config({ settings: { singleUse: true } });
  pool.grow(lane("once"), once);
  await until(() => idle.length === 1);
  const first = pool.takeIdle(lane("once"));
  assert.ok(first !== null);
  await first.run({ taskId: "t1", attempt: 1, payload: "null", deadline: Date.now() + 10_000 }, () => {});
  pool.release(first);
  await first.exited;
  await until(() => pool.idleCount(lane("once")) === 1);
  assert.notEqual(pool.takeIdle(lane("once")), first);
});
