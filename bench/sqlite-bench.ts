/**
 * Kiln on SQLite: one node, start latency with an idle warm sandbox, drain throughput and the
 * synchronous invoke round trip (idle, and under a background load of ~500 tasks/s).
 */
import { deployNoop } from "./http-api.js";
import { startBenchNode } from "./node-process.js";
import { waitForQuietMachine } from "./quiet-machine.js";
import {
  measureDrain,
  measureInvoke,
  measureStartLatency,
  median,
  type Drain,
  type Latency,
} from "./task-measures.js";

export interface BenchSizes {
  rounds: number;
  probes: number;
  drainTasks: number;
  /** Sandboxes per node, and the function's `maxConcurrency` on one node. */
  concurrency: number;
}

export async function runSqliteBench({ rounds, probes, drainTasks, concurrency }: BenchSizes): Promise<void> {
  const latencies: Latency[] = [];
  const drains: Drain[] = [];
  const invokes: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  const invokesUnderLoad: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`sqlite round ${round}: ${await waitForQuietMachine()}`);
    const node = await startBenchNode({ maxWorkers: concurrency });
    try {
      // `BENCH_MAX_CONCURRENCY` (0: none) measures the drain without the function's limit: the 16
      // sandboxes still bound it to 16 at once, and lanes may claim ahead past what runs.
      await deployNoop(node.api, Number(process.env.BENCH_MAX_CONCURRENCY ?? concurrency));
      latencies.push(await measureStartLatency(node.api, probes));
      drains.push(await measureDrain([node.api], drainTasks, concurrency));
      invokes.push(await measureInvoke(node.api, probes));
      invokesUnderLoad.push(await measureInvoke(node.api, probes, 500));
      const latency = latencies.at(-1)!;
      console.log(
        `sqlite round ${round}: start latency p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms; ` +
          `drain ${drains.at(-1)!.tasksPerS.toFixed(0)} tasks/s`,
      );
    } finally {
      await node.stop();
    }
  }
  console.log(
    `sqlite median of ${rounds}: start latency p50 ${median(latencies.map((l) => l.p50)).toFixed(2)} ms, ` +
      `p90 ${median(latencies.map((l) => l.p90)).toFixed(2)} ms, p99 ${median(latencies.map((l) => l.p99)).toFixed(2)} ms; ` +
      `drain (${drainTasks} tasks, concurrency ${concurrency}) ${median(drains.map((d) => d.tasksPerS)).toFixed(0)} tasks/s`,
  );
  console.log(
    `sqlite median of ${rounds}: invoke round trip p50 ${median(invokes.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokes.map((i) => i.p99)).toFixed(2)} ms; under ~${median(invokesUnderLoad.map((i) => i.rate)).toFixed(0)} ` +
      `background tasks/s: p50 ${median(invokesUnderLoad.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokesUnderLoad.map((i) => i.p99)).toFixed(2)} ms`,
  );
}
