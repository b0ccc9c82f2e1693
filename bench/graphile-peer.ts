/**
 * graphile-worker measured by `../shared/bench-peers/` (its `queue-bench.js`, one process per cell) on
 * the same PostgreSQL as Kiln, so that the two are compared within one session.
 */
import { execFile, spawn } from "node:child_process";
import { access, cp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export interface GraphileLatency {
  p50: number;
  p90: number;
  p99: number;
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/**
 * The peers' harness with its dependencies installed: `BENCH_PEERS_DIR` (default `../shared/bench-peers`
 * beside this checkout) when it has them, else a copy of it in the temp directory where `npm ci` ran once.
 */
export async function preparePeers(): Promise<string> {
  const checkout = fileURLToPath(new URL("../../", import.meta.url));
  const source = path.resolve(checkout, process.env.BENCH_PEERS_DIR ?? "../shared/bench-peers");
  if (await exists(path.join(source, "node_modules", "graphile-worker"))) return source;
  const copy = path.join(os.tmpdir(), "kiln-bench-peers");
  if (await exists(path.join(copy, "node_modules", "graphile-worker"))) return copy;
  console.log(`peers: copying ${source} to ${copy} and running npm ci there (once)`);
  await cp(source, copy, {
    recursive: true,
    filter: (file) => !/[/\\](node_modules|results|\.state)$/.test(file),
  });
  await promisify(execFile)("npm", ["ci", "--no-audit", "--no-fund"], { cwd: copy });
  return copy;
}

/** One cell of the peers' harness; its last line of output is the result as JSON. */
function runCell(peersDir: string, databaseUrl: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["src/queue-bench.js", "--system", "graphile", ...args], {
      cwd: peersDir,
      env: { ...process.env, PG_URL: databaseUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").at(-1) ?? "";
      try {
        if (code !== 0) throw new Error(`exit code ${code}`);
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch (error) {
        reject(new Error(`graphile ${args.join(" ")}: ${String(error)}\n${err.slice(-2000)}`));
      }
    });
  });
}

/** W2: enqueue → handler start with an idle worker, one job at a time (gap 2–10 ms), in ms. */
export async function measureGraphileLatency(
  peersDir: string,
  databaseUrl: string,
  variant: "default" | "batched",
  samples: number,
): Promise<GraphileLatency> {
  const result = await runCell(peersDir, databaseUrl, [
    "--variant",
    variant,
    "--workload",
    "w2",
    "--samples",
    String(samples),
  ]);
  return result.latency_ms as GraphileLatency;
}

/** W1: the drain of `jobs` no-op jobs bulk-enqueued before the worker (concurrency 16) starts, jobs/s. */
export async function measureGraphileDrain(
  peersDir: string,
  databaseUrl: string,
  variant: "default" | "batched",
  jobs: number,
): Promise<number> {
  const result = await runCell(peersDir, databaseUrl, [
    "--variant",
    variant,
    "--workload",
    "w1",
    "--jobs",
    String(jobs),
  ]);
  return (result.process as { jobs_per_s: number }).jobs_per_s;
}
