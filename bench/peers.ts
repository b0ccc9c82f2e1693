/**
 * The peers measured by `../shared/bench-peers/` (its `queue-bench.js`, one process per cell) in the same
 * session as Kiln: graphile-worker on the same PostgreSQL, BullMQ on the machine's Redis
 * (`REDIS_HOST`, `REDIS_PORT`; 127.0.0.1:6379 by default).
 */
import { execFile, spawn } from "node:child_process";
import { access, cp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** A peer and its variant: graphile-worker's `default` or `batched`, BullMQ's `default`. */
export type Peer =
  { system: "graphile"; variant: "default" | "batched" } | { system: "bullmq"; variant: "default" };

export interface PeerLatency {
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
function runCell(
  peersDir: string,
  databaseUrl: string,
  peer: Peer,
  args: string[],
): Promise<Record<string, unknown>> {
  const label = `${peer.system} (${peer.variant}) ${args.join(" ")}`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["src/queue-bench.js", "--system", peer.system, "--variant", peer.variant, ...args],
      { cwd: peersDir, env: { ...process.env, PG_URL: databaseUrl }, stdio: ["ignore", "pipe", "pipe"] },
    );
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
        reject(new Error(`${label}: ${String(error)}\n${err.slice(-2000)}`));
      }
    });
  });
}

/** W2: enqueue → handler start with an idle worker, one job at a time (gap 2–10 ms), in ms. */
export async function measurePeerLatency(
  peersDir: string,
  databaseUrl: string,
  peer: Peer,
  samples: number,
): Promise<PeerLatency> {
  const result = await runCell(peersDir, databaseUrl, peer, [
    "--workload",
    "w2",
    "--samples",
    String(samples),
  ]);
  return result.latency_ms as PeerLatency;
}

/** W1: the drain of `jobs` no-op jobs bulk-enqueued before the worker (concurrency 16) starts, jobs/s. */
export async function measurePeerDrain(
  peersDir: string,
  databaseUrl: string,
  peer: Peer,
  jobs: number,
): Promise<number> {
  const result = await runCell(peersDir, databaseUrl, peer, ["--workload", "w1", "--jobs", String(jobs)]);
  return (result.process as { jobs_per_s: number }).jobs_per_s;
}
