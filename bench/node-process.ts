/** Starts `bench-node.js` in a child process with a fresh data directory, and stops it. */
import { fork } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Api } from "./http-api.js";

export interface BenchNode {
  api: Api;
  /** Closes the node (running attempts end `lost`) and removes its data directory. */
  stop(): Promise<void>;
}

export interface BenchNodeOptions {
  maxWorkers: number;
  /** PostgreSQL instead of SQLite: the database URL and the schema (shared by nodes given the same). */
  database?: { url: string; schema: string };
}

export async function startBenchNode(options: BenchNodeOptions): Promise<BenchNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "kiln-bench-"));
  const profile = process.env.BENCH_PROFILE_DIR;
  const database = options.database === undefined ? [] : [options.database.url, options.database.schema];
  const node = fork(
    fileURLToPath(new URL("bench-node.js", import.meta.url)),
    [dataDir, String(options.maxWorkers), ...database],
    { execArgv: profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`] },
  );
  const exited = new Promise((resolve) => node.once("exit", resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      node.once("message", (message: { url: string }) => resolve(message.url));
      node.once("exit", (code) => reject(new Error(`bench node exited with ${code} before listening`)));
    });
    return {
      api: { url, headers: { authorization: "Bearer bench" } },
      async stop() {
        if (node.connected) node.disconnect();
        await exited;
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}
