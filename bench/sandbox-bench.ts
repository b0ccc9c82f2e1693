/**
 * Sandbox costs, per isolation level the host offers: cold start (backend start until the harness says
 * ready) and warm dispatch (a no-op task sent to a warm sandbox until its result is back).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chooseSandboxBackend } from "../src/runner/choose-sandbox-backend.js";
import { Sandbox } from "../src/runner/sandbox.js";
import type { SandboxBackend } from "../src/runner/sandbox-backend.js";

const codeDir = fileURLToPath(new URL("../../bench/functions/noop", import.meta.url));
const lane = { project: "bench", functionName: "noop", revision: "bench" };
const limits = { maxResultBytes: 1 << 20, maxLogBytes: 1 << 20 };

export interface SandboxFigures {
  level: string;
  coldStartMs: { p50: number; p99: number };
  warmDispatchMs: { p50: number; p99: number };
}

function percentiles(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

async function startSandbox(backend: SandboxBackend, workDir: string, index: number): Promise<Sandbox> {
  const started = await backend.start({
    id: `bench-${index}`,
    runtime: "node",
    codeDir,
    entry: ["index.js"],
    memoryMb: 256,
    env: {},
    workDir,
    ...limits,
  });
  const sandbox = new Sandbox({ id: `bench-${index}`, lane, ...limits }, started);
  await sandbox.ready;
  return sandbox;
}

export async function measureSandboxes(coldStarts = 60, dispatches = 2000): Promise<SandboxFigures[]> {
  const figures: SandboxFigures[] = [];
  const limitsForBackend = { tmpSizeMb: 64, pidsMax: 128, cpuCores: 1, maxPayloadBytes: 1 << 20 };
  const strong = await chooseSandboxBackend("auto", limitsForBackend);
  const backends = [strong.backend];
  if (strong.backend.level !== "process")
    backends.push((await chooseSandboxBackend("process", limitsForBackend)).backend);
  for (const backend of backends) {
    const workDir = await mkdtemp(path.join(os.tmpdir(), "kiln-sandbox-bench-"));
    try {
      const cold: number[] = [];
      for (let i = 0; i < coldStarts; i++) {
        const before = performance.now();
        const sandbox = await startSandbox(backend, workDir, i);
        cold.push(performance.now() - before);
        sandbox.kill();
        await sandbox.exited;
      }
      const sandbox = await startSandbox(backend, workDir, coldStarts);
      const warm: number[] = [];
      for (let i = 0; i < dispatches; i++) {
        const before = performance.now();
        await sandbox.run(
          { taskId: `t${i}`, attempt: 1, payload: "null", deadline: Date.now() + 30_000 },
          () => {},
        );
        warm.push(performance.now() - before);
      }
      sandbox.kill();
      await sandbox.exited;
      figures.push({
        level: backend.level,
        coldStartMs: percentiles(cold.slice(5)),
        warmDispatchMs: percentiles(warm.slice(100)),
      });
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }
  return figures;
}
