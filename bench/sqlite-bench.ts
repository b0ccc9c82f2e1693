/**
 * Kiln on SQLite: one node, start latency with an idle warm sandbox, drain throughput and the
 * synchronous invoke round trip (idle, and under a background load of ~500 tasks/s); BullMQ's start
 * latency and drain in the same rounds (`../shared/bench-peers/`), for the ratios.
 */
import { deployNoop } from "./http-api.js";
import { startBenchNode } from "./node-process.js";
import { measurePeerDrain, measurePeerLatency, preparePeers, type PeerLatency } from "./peers.js";
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

const bullmq = { system: "bullmq", variant: "default" } as const;

export async function runSqliteBench({ rounds, probes, drainTasks, concurrency }: BenchSizes): Promise<void> {
  const peersDir = await preparePeers();
  // The drain as the peers drain: 16 workers and no limit of the function's own (`BENCH_MAX_CONCURRENCY`
  // sets one; with 16, a lane cannot claim ahead past what runs).
  const maxConcurrency = Number(process.env.BENCH_MAX_CONCURRENCY ?? 0);
  const latencies: Latency[] = [];
  const drains: Drain[] = [];
  const invokes: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  const invokesUnderLoad: Awaited<ReturnType<typeof measureInvoke>>[] = [];
  const bullmqLatencies: PeerLatency[] = [];
  const bullmqDrains: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`sqlite round ${round}: ${await waitForQuietMachine()}`);
    const node = await startBenchNode({ maxWorkers: concurrency });
    try {
      await deployNoop(node.api, maxConcurrency);
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
    bullmqLatencies.push(await measurePeerLatency(peersDir, "", bullmq, probes));
    bullmqDrains.push(await measurePeerDrain(peersDir, "", bullmq, drainTasks));
    console.log(
      `sqlite round ${round}: bullmq start latency p50 ${bullmqLatencies.at(-1)!.p50.toFixed(2)} ms, ` +
        `p99 ${bullmqLatencies.at(-1)!.p99.toFixed(2)} ms; drain ${bullmqDrains.at(-1)!.toFixed(0)} jobs/s`,
    );
  }
  const kilnDrain = median(drains.map((d) => d.tasksPerS));
  const kilnP50 = median(latencies.map((l) => l.p50));
  console.log(
    `sqlite median of ${rounds}: start latency p50 ${kilnP50.toFixed(2)} ms, ` +
      `p90 ${median(latencies.map((l) => l.p90)).toFixed(2)} ms, p99 ${median(latencies.map((l) => l.p99)).toFixed(2)} ms; ` +
      `drain (${drainTasks} tasks, ${concurrency} sandboxes, maxConcurrency ${maxConcurrency}) ${kilnDrain.toFixed(0)} tasks/s`,
  );
  console.log(
    `sqlite median of ${rounds}: invoke round trip p50 ${median(invokes.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokes.map((i) => i.p99)).toFixed(2)} ms; under ~${median(invokesUnderLoad.map((i) => i.rate)).toFixed(0)} ` +
      `background tasks/s: p50 ${median(invokesUnderLoad.map((i) => i.p50)).toFixed(2)} ms, ` +
      `p99 ${median(invokesUnderLoad.map((i) => i.p99)).toFixed(2)} ms`,
  );
  const bullmqDrain = median(bullmqDrains);
  const bullmqP50 = median(bullmqLatencies.map((l) => l.p50));
  console.log(
    `sqlite median of ${rounds}: bullmq start latency p50 ${bullmqP50.toFixed(2)} ms, ` +
      `p99 ${median(bullmqLatencies.map((l) => l.p99)).toFixed(2)} ms; drain ${bullmqDrain.toFixed(0)} jobs/s; ` +
      `kiln ÷ bullmq: drain ${(kilnDrain / bullmqDrain).toFixed(2)}×, start latency p50 ${(kilnP50 / bullmqP50).toFixed(2)}×`,
  );
}
