/**
 * `npm run bench`: start latency with an idle warm sandbox, and drain throughput, for a no-op `node`
 * function on a real Kiln node (HTTP, SQLite, sandbox processes) started on 127.0.0.1.
 */
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { measureSandboxes } from "./sandbox-bench.js";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import hdr from "hdr-histogram-js";
import * as tar from "tar";
import { fork, type ChildProcess } from "node:child_process";

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const probes = Number(process.env.BENCH_PROBES ?? 500);
const drainTasks = Number(process.env.BENCH_DRAIN_TASKS ?? 20_000);
const concurrency = 16;

interface Api {
  url: string;
  headers: Record<string, string>;
}

// node:http with keep-alive: a thinner client than fetch, so the figures are mostly the server's.
const agent = new http.Agent({ keepAlive: true });

function call<T>(api: Api, method: string, route: string, body?: unknown): Promise<T> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(`${api.url}/v1/projects/default${route}`);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method,
        agent,
        headers: text === undefined ? api.headers : { ...api.headers, "content-type": "application/json" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const answer = Buffer.concat(chunks).toString();
          if ((response.statusCode ?? 500) >= 300)
            reject(new Error(`${method} ${route}: ${response.statusCode} ${answer}`));
          else resolve(JSON.parse(answer) as T);
        });
      },
    );
    request.on("error", reject);
    request.end(text);
  });
}

interface TaskView {
  id: string;
  state: string;
  result: string | null;
}

async function deployNoop(api: Api): Promise<void> {
  const dir = fileURLToPath(new URL("../../bench/functions/noop", import.meta.url));
  const chunks: Buffer[] = [];
  for await (const chunk of tar.c({ gzip: true, cwd: dir, portable: true }, ["."])) chunks.push(chunk);
  const response = await fetch(`${api.url}/v1/projects/default/functions/noop`, {
    method: "PUT",
    headers: { ...api.headers, "content-type": "application/gzip" },
    body: Buffer.concat(chunks),
  });
  if (!response.ok) throw new Error(`deploy: ${response.status} ${await response.text()}`);
  await call(api, "PATCH", "/functions/noop", { maxConcurrency: concurrency });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One task at a time into an idle warm sandbox: hrtime before the create call → handler start. */
async function measureStartLatency(
  api: Api,
): Promise<{ p50: number; p90: number; p99: number; max: number }> {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (let i = 0; i < probes + 10; i++) {
    await sleep(2 + Math.random() * 8);
    const before = process.hrtime.bigint();
    const { task } = await call<{ task: TaskView }>(api, "POST", "/tasks", { function: "noop" });
    const done = await call<TaskView>(api, "GET", `/tasks/${task.id}/wait?timeoutS=10`);
    if (done.state !== "succeeded" || done.result === null) throw new Error(`probe task ended ${done.state}`);
    if (i >= 10) histogram.recordValue(Number(BigInt(done.result) - before)); // first 10 warm up
  }
  const ms = (percentile: number) => histogram.getValueAtPercentile(percentile) / 1e6;
  return { p50: ms(50), p90: ms(90), p99: ms(99), max: histogram.maxValue / 1e6 };
}

/** Enqueue `drainTasks` while the function is paused, then unpause: first to last handler start. */
async function measureDrain(api: Api): Promise<number> {
  // Warm the pool to its concurrency first, as the peers' workers are started before they drain.
  await runBatch(api, 2000);
  await call(api, "PATCH", "/functions/noop", { paused: true });
  const ids: string[] = [];
  for (let sent = 0; sent < drainTasks; sent += 5000) {
    const batch = Array.from({ length: Math.min(5000, drainTasks - sent) }, () => ({ function: "noop" }));
    const { tasks } = await call<{ tasks: TaskView[] }>(api, "POST", "/tasks", { tasks: batch });
    ids.push(...tasks.map((task) => task.id));
  }
  await call(api, "PATCH", "/functions/noop", { paused: false });
  const starts = await collectStarts(api, ids);
  return (drainTasks - 1) / (Number(starts.at(-1)! - starts[0]!) / 1e9);
}

async function runBatch(api: Api, count: number): Promise<void> {
  const { tasks } = await call<{ tasks: TaskView[] }>(api, "POST", "/tasks", {
    tasks: Array.from({ length: count }, () => ({ function: "noop" })),
  });
  await collectStarts(
    api,
    tasks.map((task) => task.id),
  );
}

async function collectStarts(api: Api, ids: string[]): Promise<bigint[]> {
  const wanted = new Set(ids);
  const starts = new Map<string, bigint>();
  // FIFO: the last task starts last. Waiting for it first keeps the listing below off the drain.
  await call(api, "GET", `/tasks/${ids.at(-1)}/wait?timeoutS=60`);
  while (starts.size < wanted.size) {
    const missing = ids.find((id) => !starts.has(id));
    await call(api, "GET", `/tasks/${missing}/wait?timeoutS=60`);
    let cursor: string | null = null;
    do {
      const page: { tasks: TaskView[]; nextCursor: string | null } = await call(
        api,
        "GET",
        `/tasks?function=noop&state=succeeded&limit=1000${cursor === null ? "" : `&cursor=${cursor}`}`,
      );
      for (const task of page.tasks) {
        if (task.result !== null && wanted.has(task.id)) starts.set(task.id, BigInt(task.result));
      }
      cursor = page.nextCursor;
    } while (cursor !== null);
  }
  return [...starts.values()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function stopNode(node: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => node.once("exit", resolve));
  node.disconnect();
  await exited;
}

/** One synchronous invoke at a time: the whole HTTP round trip, result included. */
async function measureInvoke(
  api: Api,
  samples: number,
  background = 0,
): Promise<{ p50: number; p99: number; rate: number }> {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let offered = 0;
  // Background load: `background` tasks/s as batches of 10 every 10/background s.
  const timer =
    background > 0
      ? setInterval(() => {
          offered += 10;
          void call(api, "POST", "/tasks", {
            tasks: Array.from({ length: 10 }, () => ({ function: "noop", priority: 1 })),
          });
        }, 10_000 / background)
      : null;
  const startedMs = performance.now();
  try {
    for (let i = 0; i < samples + 20; i++) {
      await sleep(1 + Math.random() * 4);
      const before = process.hrtime.bigint();
      await call(api, "POST", "/functions/noop/invoke?wait=10", null);
      if (i >= 20) histogram.recordValue(Number(process.hrtime.bigint() - before));
    }
  } finally {
    if (timer !== null) clearInterval(timer);
  }
  const rate = (offered / (performance.now() - startedMs)) * 1000;
  return {
    p50: histogram.getValueAtPercentile(50) / 1e6,
    p99: histogram.getValueAtPercentile(99) / 1e6,
    rate,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const latencies: Awaited<ReturnType<typeof measureStartLatency>>[] = [];
  const drains: number[] = [];
  const invokes: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  const invokesUnderLoad: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  for (let round = 1; round <= rounds; round++) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "kiln-bench-"));
    const profile = process.env.BENCH_PROFILE_DIR;
    const node = fork(
      fileURLToPath(new URL("bench-node.js", import.meta.url)),
      [dataDir, String(concurrency)],
      {
        execArgv: profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`],
      },
    );
    try {
      const url = await new Promise<string>((resolve) =>
        node.once("message", (m: { url: string }) => resolve(m.url)),
      );
      const api = { url, headers: { authorization: "Bearer bench" } };
      await deployNoop(api);
      latencies.push(await measureStartLatency(api));
      drains.push(await measureDrain(api));
      invokes.push(await measureInvoke(api, probes));
      invokesUnderLoad.push(await measureInvoke(api, probes, 500));
      const latency = latencies.at(-1)!;
      console.log(
        `round ${round}: start latency p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms; drain ${drains.at(-1)!.toFixed(0)} tasks/s`,
      );
    } finally {
      await stopNode(node);
      await rm(dataDir, { recursive: true, force: true });
    }
  }
  console.log(
    `median of ${rounds}: start latency p50 ${median(latencies.map((l) => l.p50)).toFixed(2)} ms, ` +
      `p90 ${median(latencies.map((l) => l.p90)).toFixed(2)} ms, p99 ${median(latencies.map((l) => l.p99)).toFixed(2)} ms; ` +
      `drain (${drainTasks} tasks, concurrency ${concurrency}) ${median(drains).toFixed(0)} tasks/s`,
  );
  console.log(
    `median of ${rounds}: invoke round trip p50 ${median(invokes.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokes.map((i) => i.p99)).toFixed(2)} ms; under ~${median(invokesUnderLoad.map((i) => i.rate)).toFixed(0)} ` +
      `background tasks/s: p50 ${median(invokesUnderLoad.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokesUnderLoad.map((i) => i.p99)).toFixed(2)} ms`,
  );
}

await main();
for (const { level, coldStartMs, warmDispatchMs } of await measureSandboxes()) {
  console.log(
    `sandbox (${level}): cold start p50 ${coldStartMs.p50.toFixed(1)} ms, p99 ${coldStartMs.p99.toFixed(1)} ms; ` +
      `warm dispatch of a no-op task p50 ${warmDispatchMs.p50.toFixed(3)} ms, p99 ${warmDispatchMs.p99.toFixed(3)} ms`,
  );
}
