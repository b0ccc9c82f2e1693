/**
 * Kiln on PostgreSQL beside graphile-worker, round by round in one session: start latency with an idle
 * warm sandbox and the drain on one node, the drain on several nodes sharing one database, and
 * graphile-worker's latency and drain on the same PostgreSQL (`../shared/bench-peers/`). Each Kiln
 * measurement gets a fresh schema, dropped afterwards.
 */
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import pg from "pg";
import { deployNoop } from "./http-api.js";
import { measurePeerDrain, measurePeerLatency, preparePeers, type PeerLatency } from "./peers.js";
import { countersPerTask, readCounters } from "./postgres-counters.js";
import { startBenchNode, type BenchNode } from "./node-process.js";
import { waitForQuietMachine } from "./quiet-machine.js";
import type { BenchSizes } from "./sqlite-bench.js";
import { measureDrain, measureStartLatency, median, type Drain, type Latency } from "./task-measures.js";

const databaseUrl =
  process.env.BENCH_DATABASE_URL ?? process.env.KILN_TEST_DATABASE_URL ?? "postgres://127.0.0.1:5432/test";
// `pg` takes the user from PGUSER or USER only (as src/main.ts does); the children inherit it.
process.env.PGUSER ??= process.env.USER ?? userInfo().username;

interface CountedDrain extends Drain {
  /** PostgreSQL commits per task run (warm-up, enqueues and the bench's reads included). */
  commitsPerTask: number;
  /** The share of the updates of `tasks` that were HOT. */
  hotShare: number;
}

interface Round {
  latency: Latency | null;
  drain: CountedDrain | null;
  clusterDrain: Drain | null;
  graphileLatency: PeerLatency | null;
  graphileDefaultLatency: PeerLatency | null;
  graphileDrain: number | null;
}

/**
 * Runs one part once the machine is quiet. A part that failed leaves its figure out of the medians (and
 * says why) instead of ending the run.
 */
async function tryPart<T>(label: string, part: () => Promise<T>): Promise<T | null> {
  console.log(`${label}: ${await waitForQuietMachine()}`);
  try {
    return await part();
  } catch (error) {
    console.error(`${label} failed:`, error);
    return null;
  }
}

/** A connection for the bench's own statements; a dropped connection fails its query instead of the process. */
async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Runs `body` against a new schema of the bench database, dropped afterwards. */
async function withSchema<T>(body: (schema: string) => Promise<T>): Promise<T> {
  const schema = `kiln_bench_${randomBytes(6).toString("hex")}`;
  try {
    return await body(schema);
  } finally {
    const admin = await connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
}

/** Starts `count` nodes on one schema (each its own data directory, so its own node id). */
async function withNodes<T>(
  count: number,
  schema: string,
  maxWorkers: number,
  body: (nodes: BenchNode[]) => Promise<T>,
): Promise<T> {
  const database = { url: databaseUrl, schema };
  const started = await Promise.allSettled(
    Array.from({ length: count }, () => startBenchNode({ maxWorkers, database })),
  );
  const nodes = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    return await body(nodes);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

/** `measureDrain`, with PostgreSQL's commits per task and the HOT share of `tasks` updates around it. */
async function measureCountedDrain(
  apis: BenchNode["api"][],
  schema: string,
  drainTasks: number,
  concurrency: number,
): Promise<CountedDrain> {
  const admin = await connect();
  try {
    const countTasks = async () =>
      Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.tasks`)).rows[0]?.n);
    const [before, tasksBefore] = [await readCounters(admin, schema), await countTasks()];
    const drain = await measureDrain(apis, drainTasks, concurrency);
    const after = await readCounters(admin, schema);
    return { ...drain, ...countersPerTask(before, after, (await countTasks()) - tasksBefore) };
  } finally {
    await admin.end();
  }
}

export async function runPostgresBench(sizes: BenchSizes, clusterNodes: number): Promise<void> {
  const { rounds, probes, drainTasks, concurrency } = sizes;
  // As on SQLite: no limit of the function's own unless `BENCH_MAX_CONCURRENCY` sets one per node.
  const maxConcurrency = Number(process.env.BENCH_MAX_CONCURRENCY ?? 0);
  const peersDir = await preparePeers();
  console.log(`postgres: ${databaseUrl}, graphile-worker from ${peersDir}`);
  const results: Round[] = [];
  for (let round = 1; round <= rounds; round++) {
    const label = `postgres round ${round}`;
    const single = await tryPart(`${label}, one node`, () =>
      withSchema((schema) =>
        withNodes(1, schema, concurrency, async ([node]) => {
          await deployNoop(node!.api, maxConcurrency);
          const latency = await measureStartLatency(node!.api, probes);
          console.log(`${label}: kiln start latency ${formatLatency(latency)}`);
          const drain = await tryPart(`${label}, one-node drain`, () =>
            measureCountedDrain([node!.api], schema, drainTasks, concurrency),
          );
          console.log(
            `${label}: kiln drain, one node: ${drain?.tasksPerS.toFixed(0) ?? "failed"} tasks/s, ` +
              `${drain?.commitsPerTask.toFixed(3) ?? "?"} commits per task, ` +
              `${((drain?.hotShare ?? NaN) * 100).toFixed(1)} % of tasks updates HOT`,
          );
          return { latency, drain };
        }),
      ),
    );
    const graphileLatency = await tryPart(`${label}, graphile batched latency`, () =>
      measurePeerLatency(peersDir, databaseUrl, { system: "graphile", variant: "batched" }, probes),
    );
    const graphileDefaultLatency = await tryPart(`${label}, graphile default latency`, () =>
      measurePeerLatency(peersDir, databaseUrl, { system: "graphile", variant: "default" }, probes),
    );
    console.log(
      `${label}: graphile start latency, batched ${formatLatency(graphileLatency)}; default ${formatLatency(graphileDefaultLatency)}`,
    );
    const clusterDrain = await tryPart(`${label}, ${clusterNodes} nodes`, () =>
      withSchema((schema) =>
        withNodes(clusterNodes, schema, concurrency, async (nodes) => {
          // 16 sandboxes on each node: `maxConcurrency` holds across the nodes sharing a database.
          await deployNoop(nodes[0]!.api, maxConcurrency * clusterNodes);
          const drain = await measureDrain(
            nodes.map((node) => node.api),
            drainTasks,
            concurrency,
          );
          console.log(
            `${label}: kiln drain, ${clusterNodes} nodes: ${drain.tasksPerS.toFixed(0)} tasks/s ` +
              `(${drain.tasksPerSFromUnpause.toFixed(0)} from the unpause)`,
          );
          return drain;
        }),
      ),
    );
    const graphileDrain = await tryPart(`${label}, graphile drain`, () =>
      measurePeerDrain(peersDir, databaseUrl, { system: "graphile", variant: "batched" }, drainTasks),
    );
    console.log(`${label}: graphile batched drain ${graphileDrain?.toFixed(0) ?? "failed"} jobs/s`);
    results.push({
      latency: single?.latency ?? null,
      drain: single?.drain ?? null,
      clusterDrain,
      graphileLatency,
      graphileDefaultLatency,
      graphileDrain,
    });
  }
  summarize(results, drainTasks, clusterNodes);
}

function formatLatency(latency: { p50: number; p90: number; p99: number } | null): string {
  if (latency === null) return "failed";
  return `p50 ${latency.p50.toFixed(2)} ms, p90 ${latency.p90.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`;
}

/** Medians of the rounds whose part succeeded (with how many when some failed), and Kiln ÷ graphile. */
function summarize(results: Round[], drainTasks: number, clusterNodes: number): void {
  const of = (pick: (round: Round) => number | undefined | null) => {
    const values = results.map(pick).filter((value): value is number => typeof value === "number");
    return {
      value: median(values),
      note: values.length < results.length ? ` [${values.length} of ${results.length} rounds]` : "",
    };
  };
  const show = (pick: (round: Round) => number | undefined | null, digits: number) => {
    const { value, note } = of(pick);
    return `${value.toFixed(digits)}${note}`;
  };
  const ratio = (
    kiln: (round: Round) => number | undefined,
    graphile: (round: Round) => number | undefined | null,
  ) => `${(of(kiln).value / of(graphile).value).toFixed(2)}×`;
  const rounds = results.length;
  console.log(
    `postgres median of ${rounds}: kiln start latency p50 ${show((r) => r.latency?.p50, 2)} ms (target ≤ 2), ` +
      `p90 ${show((r) => r.latency?.p90, 2)} ms, p99 ${show((r) => r.latency?.p99, 2)} ms (target ≤ 8); ` +
      `drain (${drainTasks} tasks) one node ${show((r) => r.drain?.tasksPerS, 0)} tasks/s (target ≥ 15000), ` +
      `${clusterNodes} nodes ${show((r) => r.clusterDrain?.tasksPerS, 0)} tasks/s; one node's drain: ` +
      `${show((r) => r.drain?.commitsPerTask, 3)} commits per task (target ≤ 0.1), ` +
      `${show((r) => (r.drain === null ? null : r.drain.hotShare * 100), 1)} % of tasks updates HOT`,
  );
  console.log(
    `postgres median of ${rounds}: graphile batched p50 ${show((r) => r.graphileLatency?.p50, 2)} ms, ` +
      `p90 ${show((r) => r.graphileLatency?.p90, 2)} ms, p99 ${show((r) => r.graphileLatency?.p99, 2)} ms, ` +
      `drain ${show((r) => r.graphileDrain, 0)} jobs/s; default p50 ${show((r) => r.graphileDefaultLatency?.p50, 2)} ms, ` +
      `p99 ${show((r) => r.graphileDefaultLatency?.p99, 2)} ms`,
  );
  console.log(
    `postgres median of ${rounds}: kiln ÷ graphile batched: p50 ${ratio(
      (r) => r.latency?.p50,
      (r) => r.graphileLatency?.p50,
    )}, ` +
      `p99 ${ratio(
        (r) => r.latency?.p99,
        (r) => r.graphileLatency?.p99,
      )}, drain one node ` +
      `${ratio(
        (r) => r.drain?.tasksPerS,
        (r) => r.graphileDrain,
      )}, ${clusterNodes} nodes ` +
      `${ratio(
        (r) => r.clusterDrain?.tasksPerS,
        (r) => r.graphileDrain,
      )}`,
  );
}
