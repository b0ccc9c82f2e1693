/**
 * Store micro-benchmark, PostgreSQL beside SQLite: enqueues of 10,000 tasks, then 20,000 tasks drained
 * by claiming 16 and finishing those 16, over and over (what one node does with 16 sandboxes, minus the
 * sandboxes), in one loop, in four, and in four with a `maxConcurrency`; on PostgreSQL, commits per
 * task and the HOT share of each table's updates. Run after a build:
 * `node dist/bench/postgres-store-bench.js`; the database is `KILN_TEST_DATABASE_URL` (default
 * postgres://127.0.0.1:5432/test), in a schema dropped at the end.
 */
import type { Lane } from "../src/domain/lane.js";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { defaultSettings } from "../src/domain/function-settings.js";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { NewTask, Store } from "../src/store/store.js";
import { PostgresStore } from "../src/store/postgres/postgres-store.js";
import { readCounters, type Counters } from "./postgres-counters.js";

const databaseUrl = process.env.KILN_TEST_DATABASE_URL ?? "postgres://127.0.0.1:5432/test";
if (process.env.PGUSER === undefined && process.env.USER === undefined)
  process.env.PGUSER = userInfo().username;
const lane: Lane = { project: "default", functionName: "noop", revision: "a".repeat(64) };
const batchSize = 16;

function newTasks(count: number): NewTask[] {
  const now = new Date();
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    ...lane,
    priority: (i % 3) as 0 | 1 | 2,
    payload: `{"n":${i}}`,
    label: null,
    idempotencyKey: null,
    timeoutS: 60,
    createdAt: now,
    runAt: now,
    callbackUrl: null,
  }));
}

async function prepare(store: Store): Promise<void> {
  await store.ensureProject(lane.project, new Date());
  await store.deployRevision({
    project: lane.project,
    name: lane.functionName,
    digest: lane.revision,
    spec: { runtime: "node", entry: ["index.js"] },
    archive: new Uint8Array([1]),
    settings: defaultSettings,
    now: new Date(),
  });
}

/**
 * Claims 16 and finishes them, `claimers` loops at once, until `count` tasks have run; with
 * `maxConcurrency`, every claim asks the store to hold the function to it.
 */
async function drain(store: Store, count: number, claimers: number, maxConcurrency = 0) {
  let started = 0;
  let claimMs = 0;
  let finishMs = 0;
  let cycles = 0;
  const loop = async () => {
    while (started < count) {
      const t0 = performance.now();
      const claimed = await store.claimTasks(lane, Math.min(batchSize, count - started), new Date(), {
        maxConcurrency,
      });
      started += claimed.length;
      const t1 = performance.now();
      const now = new Date();
      await store.finishAttempts(
        claimed.map((task) => ({
          taskId: task.id,
          attempt: task.attempt,
          startedAt: task.startedAt,
          finishedAt: now,
          outcome: "succeeded" as const,
          failure: null,
          result: "null",
          log: "",
          next: { state: "succeeded" as const },
        })),
      );
      claimMs += t1 - t0;
      finishMs += performance.now() - t1;
      cycles++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: claimers }, loop));
  const ms = performance.now() - start;
  return `${ms.toFixed(0)} ms = ${((count / ms) * 1000).toFixed(0)} tasks/s (claim ${(claimMs / cycles).toFixed(2)} ms + finish ${(finishMs / cycles).toFixed(2)} ms per 16)`;
}

async function measure(name: string, store: Store, stats?: () => Promise<string>): Promise<void> {
  await prepare(store);
  const enqueueMs: number[] = [];
  for (let round = 0; round < 3; round++) {
    const tasks = newTasks(10_000);
    const start = performance.now();
    await store.enqueueTasks(tasks);
    enqueueMs.push(performance.now() - start);
  }
  // 30,000 queued: drain 20,000 in one loop, top up, drain 20,000 in four loops at once, top up, and
  // drain 20,000 in four loops again with a concurrency limit.
  const oneLoop = await drain(store, 20_000, 1);
  await store.enqueueTasks(newTasks(10_000));
  const fourLoops = await drain(store, 20_000, 4);
  await store.enqueueTasks(newTasks(10_000));
  await store.enqueueTasks(newTasks(10_000));
  // maxConcurrency 64 = four loops of 16: the limit never bites, but every claim is a limited one.
  const limited = await drain(store, 20_000, 4, 64);
  console.log(`${name}
  enqueue 10,000 in one call: ${enqueueMs.map((ms) => ms.toFixed(0)).join(" / ")} ms
  drain 20,000, one claim/finish loop: ${oneLoop}
  drain 20,000, four loops at once:    ${fourLoops}
  the same with maxConcurrency 64:     ${limited}`);
  if (stats !== undefined) console.log(await stats());
}

/** Commits per task and the HOT share of each table's updates between two readings. */
function describeCounters(before: Counters, after: Counters, tasks: number): string {
  const lines = [
    `  commits per task (whole database, warm-up and enqueues included): ${((after.commits - before.commits) / tasks).toFixed(3)}`,
  ];
  for (const [table, now] of after.tables) {
    const was = before.tables.get(table) ?? { updates: 0, hot: 0 };
    const updates = now.updates - was.updates;
    if (updates === 0) continue;
    const hot = now.hot - was.hot;
    lines.push(`  ${table}: ${updates} updates, ${hot} HOT (${((hot / updates) * 100).toFixed(1)} %)`);
  }
  return lines.join("\n");
}

const dir = mkdtempSync(path.join(tmpdir(), "kiln-store-bench-"));
try {
  await measure(
    "SqliteStore (file, WAL)",
    new SqliteStore({ path: path.join(dir, "kiln.db"), maxLogChars: 65_536 }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const schema = `kiln_bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const store = await PostgresStore.open({
  connectionString: databaseUrl,
  schema,
  nodeId: "bench",
  maxLogChars: 65_536,
});
const admin = new pg.Client({ connectionString: databaseUrl });
await admin.connect();
try {
  const before = await readCounters(admin, schema);
  // 60,000 tasks claimed and finished (and 60,000 enqueued), as `measure` does.
  await measure("PostgresStore", store, async () =>
    describeCounters(before, await readCounters(admin, schema), 60_000),
  );
} finally {
  await store.close();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}
