/**
 * `npm run bench`: a no-op `node` function on real Kiln nodes (HTTP on 127.0.0.1, sandbox processes),
 * on SQLite, then on PostgreSQL beside graphile-worker, then the sandboxes' own costs. `BENCH_ONLY`
 * (a comma-separated list of `sqlite`, `postgres`, `sandboxes`) runs only those parts.
 */
import { runPostgresBench } from "./postgres-bench.js";
import { measureSandboxes } from "./sandbox-bench.js";
import { runSqliteBench, type BenchSizes } from "./sqlite-bench.js";

const parts = ["sqlite", "postgres", "sandboxes"] as const;
const only = (process.env.BENCH_ONLY ?? parts.join(",")).split(",").map((part) => part.trim());
for (const part of only) {
  if (!(parts as readonly string[]).includes(part))
    throw new Error(`BENCH_ONLY: unknown part '${part}' (known: ${parts.join(", ")})`);
}
const sizes: BenchSizes = {
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  probes: Number(process.env.BENCH_PROBES ?? 500),
  drainTasks: Number(process.env.BENCH_DRAIN_TASKS ?? 20_000),
  concurrency: 16,
};

if (only.includes("sqlite")) await runSqliteBench(sizes);
if (only.includes("postgres")) await runPostgresBench(sizes, Number(process.env.BENCH_PG_NODES ?? 3));
if (only.includes("sandboxes")) {
  for (const { level, coldStartMs, warmDispatchMs } of await measureSandboxes()) {
    console.log(
      `sandbox (${level}): cold start p50 ${coldStartMs.p50.toFixed(1)} ms, p99 ${coldStartMs.p99.toFixed(1)} ms; ` +
        `warm dispatch of a no-op task p50 ${warmDispatchMs.p50.toFixed(3)} ms, p99 ${warmDispatchMs.p99.toFixed(3)} ms`,
    );
  }
}
