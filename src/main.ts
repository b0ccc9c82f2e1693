/** Wiring: build a node's components from its configuration and start it. */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { deployFunction } from "./api/deploy-function.js";
import { buildApi } from "./api/server.js";
import type { Cluster } from "./cluster/cluster.js";
import { DataDirLock } from "./cluster/data-dir-lock.js";
import { SingleNode } from "./cluster/single-node.js";
import type { Config } from "./config/config.js";
import { CallbackSender } from "./dispatch/callback-sender.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { chooseSandboxBackend } from "./runner/choose-sandbox-backend.js";
import { RevisionCache } from "./runner/revision-cache.js";
import type { IsolationLevel, SandboxBackend } from "./runner/sandbox-backend.js";
import { Runner } from "./runner/runner.js";
import { SandboxPool } from "./runner/sandbox-pool.js";
import { PostgresCluster } from "./store/postgres/postgres-cluster.js";
import { PostgresStore } from "./store/postgres/postgres-store.js";
import { SqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";
import { noLimits } from "./domain/plan.js";
import { packFunction } from "./client/pack-function.js";
import { createLogger, type Logger } from "./logger.js";

export interface RunningNode {
  url: string;
  /** Set only when this start generated the admin token (it is printed once, then only kept on disk). */
  adminToken: string | null;
  isolation: IsolationLevel;
  /** Why this level was chosen (what the host offers or lacks). */
  isolationReason: string;
  /** What the operator must know about this node, such as what its isolation level does not protect. */
  warnings: string[];
  app: FastifyInstance;
  dispatcher: Dispatcher;
  store: Store;
  /**
   * Stops the node gracefully: no more claims at once, running tasks get `graceMs` (default 0) to finish,
   * then the rest are handed back (queued again, not `lost`, not charged) and the node exits. API calls
   * are still served meanwhile: new tasks are accepted (they are durable, and run on another node or at
   * the next start). `signal` cuts the grace short.
   */
  /** The node's logger (fastify's too): components log through it, never to the console directly. */
  logger: Logger;
  close(options?: CloseOptions): Promise<void>;
}

export interface CloseOptions {
  graceMs?: number;
  signal?: AbortSignal;
  /** Hears how many tasks the stop waits for, and for how much longer at most, whenever that changes. */
  onWaiting?: (running: number, remainingMs: number) => void;
  /** Hears how many tasks were handed back once the grace is over (not called when none were). */
  onHandedBack?: (count: number) => void;
}

const processIsolationWarning =
  "isolation 'process': sandboxes run as this server's user without namespaces or cgroups, so function " +
  "code can read the data directory (database, token), use the network, start processes that outlive " +
  "its task and allocate memory off the V8 heap without limit. Run only code you trust.";

export async function startNode(
  config: Readonly<Config>,
  logger: Logger = createLogger(config.logLevel),
): Promise<RunningNode> {
  if (!isLoopback(config.host) && config.token === null) {
    throw new Error(
      `refusing to listen on ${config.host} without a configured token: set KILN_TOKEN (or --token), or bind 127.0.0.1`,
    );
  }
  const { backend, reason } = await chooseSandboxBackend(config.isolation, {
    tmpSizeMb: config.sandboxTmpMb,
    pidsMax: config.sandboxPidsMax,
    cpuCores: config.sandboxCpuCores,
    maxPayloadBytes: config.maxPayloadBytes,
  });
  const isolation = backend.level;
  if (!isLoopback(config.host) && isolation !== "strong" && !config.allowWeakIsolation) {
    throw new Error(
      `refusing to listen on ${config.host} with isolation '${isolation}' (${reason}): ` +
        "use strong isolation, or pass --allow-weak-isolation to accept the risk",
    );
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const lock = await DataDirLock.acquire(config.dataDir);
  try {
    return await startOnLockedDir(config, lock, backend, reason, logger);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

async function startOnLockedDir(
  config: Readonly<Config>,
  lock: DataDirLock,
  backend: SandboxBackend,
  reason: string,
  logger: Logger,
): Promise<RunningNode> {
  const isolation = backend.level;
  const { token, generated } = await resolveToken(config);

  const { store, cluster } = await openStore(config, logger);
  await store.ensureProject("default", new Date());
  const runner = new Runner();
  // The pool tells the dispatcher of sandboxes that finished starting and of room freed; a sandbox that
  // ends a task goes straight back to its lane (see DispatchLane), not through the pool.
  let dispatcher: Dispatcher | null = null;
  const pool = new SandboxPool({
    backend,
    dir: path.join(config.dataDir, "sandboxes"),
    maxSandboxes: config.maxWorkers,
    memoryBudgetMb: config.memoryBudgetMb,
    longShare: config.longPoolShare,
    maxTasksPerSandbox: config.workerMaxTasks,
    idleMs: config.workerIdleMs,
    maxResultBytes: config.maxResultBytes,
    maxLogBytes: config.maxLogBytes,
    revisions: new RevisionCache(path.join(config.dataDir, "revisions"), store, config),
    onIdle: (lane) => dispatcher?.sandboxIdle(lane),
    onRoomFreed: () => dispatcher?.roomFreed(),
    onStartFailed: (lane, reason) =>
      void dispatcher
        ?.failStart(lane, reason)
        .catch((error: unknown) =>
          logger.error({ err: error }, "failing a task whose sandbox did not start failed"),
        ),
  });
  await keepCallbackKeyFile(store, config.dataDir);
  const callbacks = new CallbackSender({
    store,
    retryBaseMs: config.callbackRetryBaseMs,
    maxAttempts: config.callbackMaxAttempts,
    allowPrivateAddresses: config.callbackAllowPrivate,
    logger,
  });
  dispatcher = new Dispatcher({
    logger,
    callbacks,
    cluster,
    store,
    pool,
    runner,
    maxLostAttempts: config.maxLostAttempts,
    memoryTiersMb: config.memoryTiersMb,
    longTaskThresholdS: config.longTaskThresholdS,
    // On PostgreSQL the statement that records a batch of ends costs far more than a row of it.
    endBatchLingerMs: config.database === null ? 0 : 2,
  });
  // Registered before the first claim: a node's claims are only ever recovered through its lease.
  await cluster.join(dispatcher);
  await dispatcher.start();

  const scratchDir = path.join(config.dataDir, "scratch");
  await mkdir(scratchDir, { recursive: true });
  const sandboxUsage = () => pool.usage;
  const app = await buildApi({
    store,
    dispatcher,
    cluster,
    config,
    token,
    isolation,
    sandboxUsage,
    scratchDir,
    logger,
  });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;

  if (config.deployExamples) await deployExamples(store, dispatcher, scratchDir, config.memoryTiersMb);

  const running = dispatcher;
  return {
    url: `http://${host}:${port}`,
    adminToken: generated ? token : null,
    isolation,
    isolationReason: reason,
    warnings: isolation === "process" ? [processIsolationWarning] : [],
    app,
    dispatcher: running,
    store,
    logger,
    async close({ graceMs = 0, signal, onWaiting, onHandedBack }: CloseOptions = {}) {
      running.stopClaiming();
      await running.waitForRunningTasks(graceMs, signal, onWaiting);
      running.stop();
      const unfinished = running.unfinishedAttempts();
      callbacks.stop();
      await app.close();
      await pool.close();
      await running.settle();
      const handedBack = await running.handBack(unfinished);
      if (handedBack > 0) onHandedBack?.(handedBack);
      await cluster.leave();
      await store.close();
      await lock.release();
    },
  };
}

/** SQLite in the data directory (one node), or PostgreSQL shared by many when a database URL is configured. */
async function openStore(
  config: Readonly<Config>,
  logger: Logger,
): Promise<{ store: Store; cluster: Cluster }> {
  if (config.database === null) {
    const store = new SqliteStore({
      path: path.join(config.dataDir, "kiln.db"),
      maxLogChars: config.maxLogBytes,
    });
    return { store, cluster: new SingleNode() };
  }
  // The node's name outlives restarts (its recovery finds the tasks it claimed before) and is unique.
  const nodeId = await readOrCreateSecret(path.join(config.dataDir, "node-id"), "node-");
  // `pg` takes the user from PGUSER or USER only; psql's habit is the OS account.
  process.env.PGUSER ??= process.env.USER ?? userInfo().username;
  const store = await PostgresStore.open({
    connectionString: config.database,
    schema: config.databaseSchema,
    nodeId,
    maxLogChars: config.maxLogBytes,
  });
  const cluster = new PostgresCluster({
    store,
    connectionString: config.database,
    leaseTtlMs: config.leaseTtlMs,
    pollIntervalMs: config.pollIntervalMs,
    maxLostAttempts: config.maxLostAttempts,
    // One line per trouble with the database: it is expected to come back, and the node carries on.
    onError: (error) => logger.warn(`database: ${error instanceof Error ? error.message : String(error)}`),
  });
  return { store, cluster };
}

/** Deploys every function directory under `examples/` (an unchanged one keeps its revision). */
async function deployExamples(
  store: Store,
  dispatcher: Dispatcher,
  scratchDir: string,
  memoryTiersMb: readonly number[],
): Promise<void> {
  const examplesDir = fileURLToPath(new URL("../../examples", import.meta.url));
  const entries = await readdir(examplesDir, { withFileTypes: true });
  for (const entry of entries.filter((candidate) => candidate.isDirectory())) {
    const archive = await packFunction(path.join(examplesDir, entry.name));
    await deployFunction(store, {
      project: "default",
      name: entry.name,
      archive,
      scratchDir,
      memoryTiersMb,
      plan: (await store.planOfProject("default")) ?? { name: null, limits: noLimits },
    });
    void dispatcher.functionChanged("default", entry.name, false);
  }
}

/** The configured token, else the one kept in the data directory, else a new one written there (0600). */
async function resolveToken(config: Readonly<Config>): Promise<{ token: string; generated: boolean }> {
  if (config.token !== null) return { token: config.token, generated: false };
  const file = path.join(config.dataDir, "admin-token");
  const existing = await readFile(file, "utf8").catch(() => null);
  if (existing !== null && existing.trim() !== "") return { token: existing.trim(), generated: false };
  return { token: await readOrCreateSecret(file, "kiln_"), generated: true };
}

/**
 * Callbacks were signed with a key file per node before projects kept their own: the `default`
 * project takes this node's file, unless it has a key already, so receivers keep verifying.
 */
async function keepCallbackKeyFile(store: Store, dataDir: string): Promise<void> {
  const old = (await readFile(path.join(dataDir, "callback-secret"), "utf8").catch(() => "")).trim();
  if (old !== "") await store.callbackSecret("default", old);
}

/** A secret kept in a file of the data directory (mode 0600), made on first use. */
async function readOrCreateSecret(file: string, prefix = ""): Promise<string> {
  const existing = await readFile(file, "utf8").catch(() => null);
  if (existing !== null && existing.trim() !== "") return existing.trim();
  const secret = `${prefix}${randomBytes(24).toString("base64url")}`;
  await writeFile(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
  return secret;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
