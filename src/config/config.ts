/** Node configuration: one schema, defaults < environment (KILN_*) < flags, frozen. */
import os from "node:os";
import path from "node:path";
import { logLevels, type LogLevel } from "../logger.js";

export interface Config {
  /** Where the SQLite database, the admin token, revision code and temp dirs live. */
  dataDir: string;
  host: string;
  port: number;
  /**
   * `postgres://…` to keep the durable state in PostgreSQL instead of `dataDir/kiln.db`: every node
   * given the same database (and schema) is one Kiln.
   */
  database: string | null;
  /** The PostgreSQL schema Kiln's tables live in. */
  databaseSchema: string;
  /**
   * With PostgreSQL: how long a node's lease lasts. It renews it every third of this; once it has
   * expired, another node records the tasks it was running as `lost` and runs them again.
   */
  leaseTtlMs: number;
  /** With PostgreSQL: how often a node looks for work that a lost notification would have announced. */
  pollIntervalMs: number;
  /** Admin token; when unset, one is generated on first start and kept in `dataDir/admin-token`. */
  token: string | null;
  /** Worker processes this node may run at once (its task slots). */
  maxWorkers: number;
  /** A worker is replaced after this many tasks. */
  workerMaxTasks: number;
  /** An idle worker is stopped after this long. */
  workerIdleMs: number;
  maxPayloadBytes: number;
  maxResultBytes: number;
  maxLogBytes: number;
  /** Largest HTTP body (a batch of tasks, a function archive). */
  maxRequestBytes: number;
  /** Most a function archive may unpack to (its inflated tar), in MiB. */
  maxUnpackedMb: number;
  /** Most files, directories and symlinks a function archive may hold. */
  maxArchiveEntries: number;
  /** A task whose attempts were lost this many times ends `failed` instead of running again. */
  maxLostAttempts: number;
  /** Deploy the functions under `examples/` at start. */
  deployExamples: boolean;
  /** `auto`: the strongest level the host offers; `strong` refuses to start without it. */
  isolation: "auto" | "strong" | "process";
  /** Allow a non-loopback address below `strong` isolation. */
  allowWeakIsolation: boolean;
  /** Size cap of each sandbox's `/tmp` (strong isolation). */
  sandboxTmpMb: number;
  /** Most processes in one sandbox (strong isolation). */
  sandboxPidsMax: number;
  /** CPU cores one sandbox may use (strong isolation). */
  sandboxCpuCores: number;
  /** The longest a synchronous invocation may wait for its result (callers ask for less with `wait`). */
  maxInvokeWaitS: number;
  /** How long a synchronous invocation may wait for a sandbox before it is refused with 429. */
  invokeAdmissionMs: number;
  /** Delay before a failed callback delivery is retried; it doubles each retry (up to a minute). */
  callbackRetryBaseMs: number;
  /** Deliveries tried before a callback is given up. */
  callbackMaxAttempts: number;
  /** Let callback URLs reach loopback, private, link-local and unique-local addresses (off: only public ones). */
  callbackAllowPrivate: boolean;
  /** The least severe level the node logs: fatal, error, warn, info, debug, trace or silent. */
  logLevel: LogLevel;
  /** Memory all sandboxes of this node may reserve together (each reserves its tier). */
  memoryBudgetMb: number;
  /** The memory tiers (pools); a function runs in the smallest that holds its `memoryMb`. */
  memoryTiersMb: number[];
  /** Functions whose timeout is longer run in the `long` pool... */
  longTaskThresholdS: number;
  /** ...which may hold this share of the memory budget, so long tasks cannot starve short ones. */
  longPoolShare: number;
  /**
   * On SIGTERM/SIGINT, how long running tasks may take to finish before the node hands them back
   * (queued again, not `lost`) and exits.
   */
  shutdownGraceS: number;
}

export const defaultConfig: Config = {
  dataDir: path.resolve(".kiln"),
  host: "127.0.0.1",
  port: 7878,
  token: null,
  database: null,
  databaseSchema: "kiln",
  leaseTtlMs: 5000,
  pollIntervalMs: 1000,
  maxWorkers: 16,
  workerMaxTasks: 10_000,
  workerIdleMs: 5 * 60_000,
  maxPayloadBytes: 1024 * 1024,
  maxResultBytes: 1024 * 1024,
  maxLogBytes: 1024 * 1024,
  maxRequestBytes: 64 * 1024 * 1024,
  maxUnpackedMb: 256,
  maxArchiveEntries: 10_000,
  maxLostAttempts: 3,
  deployExamples: false,
  isolation: "auto",
  allowWeakIsolation: false,
  sandboxTmpMb: 64,
  sandboxPidsMax: 128,
  sandboxCpuCores: 1,
  maxInvokeWaitS: 60,
  callbackRetryBaseMs: 1000,
  callbackMaxAttempts: 15,
  callbackAllowPrivate: false,
  logLevel: "info",
  invokeAdmissionMs: 250,
  memoryBudgetMb: Math.floor((os.totalmem() / 1024 / 1024) * 0.75),
  memoryTiersMb: [128, 256, 512, 1024, 2048],
  longTaskThresholdS: 300,
  longPoolShare: 0.5,
  shutdownGraceS: 30,
};

const envNames: { [K in keyof Config]?: string } = {
  dataDir: "KILN_DATA_DIR",
  host: "KILN_HOST",
  port: "KILN_PORT",
  token: "KILN_TOKEN",
  database: "KILN_DATABASE_URL",
  databaseSchema: "KILN_DATABASE_SCHEMA",
  leaseTtlMs: "KILN_LEASE_TTL_MS",
  pollIntervalMs: "KILN_POLL_INTERVAL_MS",
  maxWorkers: "KILN_MAX_WORKERS",
  maxPayloadBytes: "KILN_MAX_PAYLOAD_BYTES",
  maxResultBytes: "KILN_MAX_RESULT_BYTES",
  maxLogBytes: "KILN_MAX_LOG_BYTES",
  maxLostAttempts: "KILN_MAX_LOST_ATTEMPTS",
  maxUnpackedMb: "KILN_MAX_UNPACKED_MB",
  maxArchiveEntries: "KILN_MAX_ARCHIVE_ENTRIES",
  isolation: "KILN_ISOLATION",
  sandboxTmpMb: "KILN_SANDBOX_TMP_MB",
  sandboxPidsMax: "KILN_SANDBOX_PIDS_MAX",
  sandboxCpuCores: "KILN_SANDBOX_CPU_CORES",
  memoryBudgetMb: "KILN_MEMORY_BUDGET_MB",
  maxInvokeWaitS: "KILN_MAX_INVOKE_WAIT_S",
  callbackRetryBaseMs: "KILN_CALLBACK_RETRY_BASE_MS",
  callbackMaxAttempts: "KILN_CALLBACK_MAX_ATTEMPTS",
  callbackAllowPrivate: "KILN_CALLBACK_ALLOW_PRIVATE",
  logLevel: "KILN_LOG_LEVEL",
  invokeAdmissionMs: "KILN_INVOKE_ADMISSION_MS",
  memoryTiersMb: "KILN_MEMORY_TIERS_MB",
  longTaskThresholdS: "KILN_LONG_TASK_THRESHOLD_S",
  longPoolShare: "KILN_LONG_POOL_SHARE",
  workerIdleMs: "KILN_SANDBOX_IDLE_MS",
  shutdownGraceS: "KILN_SHUTDOWN_GRACE_S",
};

/** Builds the configuration from defaults, then `env`, then `overrides` (flags). */
export function loadConfig(
  overrides: Partial<Config> = {},
  env: NodeJS.ProcessEnv = process.env,
): Readonly<Config> {
  const fromEnv: Partial<Record<keyof Config, unknown>> = {};
  for (const [key, name] of Object.entries(envNames) as [keyof Config, string][]) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const kind = defaultConfig[key];
    fromEnv[key] = Array.isArray(kind)
      ? raw.split(",").map((part) => parseNumber(name, part.trim()))
      : typeof kind === "number"
        ? parseNumber(name, raw)
        : typeof kind === "boolean"
          ? parseBoolean(name, raw)
          : raw;
  }
  const config = { ...defaultConfig, ...fromEnv, ...withoutUndefined(overrides) } as Config;
  config.dataDir = path.resolve(config.dataDir);
  // Shorter than this, a busy database or a garbage collection pause would pass for a dead node.
  if (config.leaseTtlMs < 500)
    throw new Error(`the lease must last at least 500 ms, got ${config.leaseTtlMs}`);
  if (config.pollIntervalMs < 10) {
    throw new Error(`the poll interval must be at least 10 ms, got ${config.pollIntervalMs}`);
  }
  if (!["auto", "strong", "process"].includes(config.isolation)) {
    throw new Error(`isolation must be auto, strong or process, got '${String(config.isolation)}'`);
  }
  if (!logLevels.includes(config.logLevel)) {
    throw new Error(
      `KILN_LOG_LEVEL must be one of ${logLevels.join(", ")}, got '${String(config.logLevel)}'`,
    );
  }
  return Object.freeze(config);
}

function parseBoolean(name: string, raw: string): boolean {
  if (["1", "true", "yes"].includes(raw)) return true;
  if (["0", "false", "no"].includes(raw)) return false;
  throw new Error(`${name} must be 1 or 0 (true or false), got '${raw}'`);
}

function parseNumber(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} must be a non-negative number, got '${raw}'`);
  return value;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
