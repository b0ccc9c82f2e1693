/**
 * The PostgreSQL store's connections, shared by its parts (one file per concern): a durable pool for
 * enqueues, deploys and reads, a fast pool for claims and attempt ends, and the announcements to the
 * other nodes. Nothing outside `store/postgres/` sees a connection or a transaction.
 */
import pg from "pg";
import { Announcer, channelOf } from "./announcements.js";
import { PostgresLaneIds } from "./postgres-lane-ids.js";
import { migrations } from "./migrations/index.js";
import type { Queryable } from "./statements.js";
import { rethrowUnavailable } from "./unavailable.js";

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`. */
  connectionString: string;
  /** Every table lives in this schema, created if missing. Default `kiln`. */
  schema?: string;
  /**
   * This node's name, the same across its restarts and unique among the nodes sharing the database:
   * each claim records it, and `recoverInterruptedTasks` touches only the tasks it claimed.
   */
  nodeId: string;
  /** A task's log is cut (and the cut marked) past this many characters. */
  maxLogChars: number;
  /** Connections in each of the two pools (durable and fast). Default 8. */
  maxConnections?: number;
  /** A connection that broke while idle (the database restarted, say); the pool replaces it. */
  onIdleConnectionError?: (error: Error) => void;
}

const migrationLockKey = 0x6b696c6e;

const schemaPattern = /^[a-z_][a-z0-9_]{0,62}$/;
/**
 * The longest any statement may run. The slowest legitimate ones are a deploy's archive insert and an
 * enqueue of 10,000 tasks (well under a second here); a statement past this is a database in trouble,
 * answered `STORE_UNAVAILABLE` (try again) rather than waited on. A transaction left idle this long
 * (a node frozen mid-transaction) is ended too, so it holds no row locks other nodes wait on.
 */
export const statementTimeoutMs = 30_000;
/** A database that has not answered a connection attempt by then is treated as unreachable. */
export const connectTimeoutMs = 5000;

export class PostgresConnections {
  readonly pool: pg.Pool;

  /**
   * Connections for claims and attempt ends, the statements on every task's path (and a sync invoke's
   * insert, whose caller waits and retries): their commits do not wait for the WAL's fsync (1–2 ms
   * here), as SQLite commits them at NORMAL. A crash of PostgreSQL itself may forget the last of them
   * (its WAL writer flushes within ~0.6 s): those tasks run again. Enqueues, deploys and cancels go
   * through `pool` and stay synchronous: their callers were told they were accepted. Plans that sort or
   * scan are ruled out here (see the constructor).
   */
  readonly fastPool: pg.Pool;

  /** The pool's `query`, with an unreachable database reported as `StoreUnavailableError`. */
  readonly db: Queryable;

  /** The same for the fast pool. */
  readonly fastDb: Queryable;

  readonly schema: string;

  readonly nodeId: string;

  readonly announce: Announcer;
  /** Integer ids of lanes and function slots, cached. */
  readonly laneIds: PostgresLaneIds;

  readonly maxLogChars: number;

  private closing: Promise<void> | null = null;

  /** Connects lazily and does not migrate: see `open`. */
  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? "kiln";
    if (!schemaPattern.test(this.schema)) throw new Error(`not a plain schema name: ${this.schema}`);
    this.nodeId = options.nodeId;
    this.maxLogChars = options.maxLogChars;
    // Epoch milliseconds and seq fit a double exactly; int8 would arrive as strings otherwise.
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, Number);
    const openPool = (name: string, idleInTransactionMs: number, settings: string) => {
      const pool = new pg.Pool({
        connectionString: options.connectionString,
        max: options.maxConnections ?? 8,
        // Names the node in pg_stat_activity.
        application_name: `kiln ${this.nodeId} ${name}`,
        // Every unqualified name resolves in the store's schema. A statement past `statementTimeoutMs`
        // is cancelled by the server (57014, taken for unavailable), and a transaction left idle ended.
        options:
          `-c search_path=${pg.escapeIdentifier(this.schema)} -c statement_timeout=${statementTimeoutMs} ` +
          `-c idle_in_transaction_session_timeout=${idleInTransactionMs} ${settings}`,
        // The client gives up a little later, for a server that stopped answering altogether.
        query_timeout: statementTimeoutMs + 5000,
        connectionTimeoutMillis: connectTimeoutMs,
        types,
      });
      pool.on("error", options.onIdleConnectionError ?? (() => {}));
      const db: Queryable = {
        query: <Row extends pg.QueryResultRow>(config: pg.QueryConfig) =>
          pool.query<Row>(config).catch(rethrowUnavailable),
      };
      return [pool, db] as const;
    };
    // jit off on both: every statement here is short, and a cost estimate past jit_above_cost (easy to
    // reach with sorting ruled out, see below, or a batch of 10,000 rows) has PostgreSQL spend ~0.5 s
    // compiling a statement that runs in a millisecond.
    // A node frozen or cut off inside a transaction must not hold the rows it locked for long.
    [this.pool, this.db] = openPool("durable", 10_000, "-c jit=off");
    // The fast pool runs the claim and the end of attempts (`queue-statements.ts`), and the insert of a
    // sync invoke: each reaches a batch of rows by their keys, so nested loops over index scans are the
    // only right plans there (a claim that sorted its lane cost 18 ms instead of 1 ms). The
    // statistics of a queue that grows and drains within seconds say otherwise: the end of attempts
    // scanned the whole `tasks` table for its batch, then `running_by_node`, full of the dead entries of
    // a drain autovacuum had not reached yet, for its node's rows (~5 ms a batch at 20,000 tasks).
    [this.fastPool, this.fastDb] = openPool(
      "fast",
      statementTimeoutMs,
      "-c synchronous_commit=off -c enable_sort=off -c enable_seqscan=off -c enable_bitmapscan=off " +
        "-c enable_hashjoin=off -c enable_mergejoin=off -c jit=off",
    );
    this.announce = new Announcer(this.db, channelOf(this.schema), this.nodeId);
    this.laneIds = new PostgresLaneIds((work) => this.transaction(work));
  }

  /** Applies missing migrations, in one transaction that nodes starting together take turns on. */
  async migrate(): Promise<void> {
    await this.transaction(async (db) => {
      await db.query({ text: "SELECT pg_advisory_xact_lock($1)", values: [migrationLockKey] });
      const { rowCount } = await db.query({
        text: "SELECT 1 FROM pg_namespace WHERE nspname = $1",
        values: [this.schema],
      });
      // Checked first: an operator may create the schema for a role that cannot create schemas.
      if (rowCount === 0) await db.query({ text: `CREATE SCHEMA ${pg.escapeIdentifier(this.schema)}` });
      await db.query({
        text: `CREATE TABLE IF NOT EXISTS kiln_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      });
      const { rows } = await db.query<{ version: number | null }>({
        text: "SELECT max(version) AS version FROM kiln_migrations",
      });
      const applied = rows[0]?.version ?? 0;
      for (const [index, migration] of migrations.entries()) {
        if (index < applied) continue;
        await db.query({ text: migration.up });
        await db.query({
          text: "INSERT INTO kiln_migrations (version, name) VALUES ($1, $2)",
          values: [index + 1, migration.name],
        });
      }
    });
  }

  /** Ends the pools once; later calls wait for the same end. Drops nothing. */
  close(): Promise<void> {
    this.closing ??= this.announce
      .flush()
      .then(() => Promise.all([this.pool.end(), this.fastPool.end()]))
      .then(() => {});
    return this.closing;
  }

  /** Runs `work` in one transaction on one connection: committed if it resolves, rolled back if not. */
  async transaction<T>(
    work: (db: pg.PoolClient) => Promise<T>,
    begin = "BEGIN",
    pool = this.pool,
  ): Promise<T> {
    const client = await pool.connect().catch(rethrowUnavailable);
    // The pool listens for errors of idle connections only: one that breaks between two statements
    // of this transaction must not become an uncaught exception. Its next query fails instead.
    const ignore = () => {};
    client.on("error", ignore);
    const release = (broken?: Error | boolean) => {
      client.removeListener("error", ignore);
      client.release(broken);
    };
    try {
      await client.query(begin);
      const result = await work(client);
      await client.query("COMMIT");
      release();
      return result;
    } catch (error) {
      // A connection whose rollback fails is in an unknown state: destroy it rather than pool it.
      await client.query("ROLLBACK").then(
        () => release(),
        (rollbackError: unknown) => release(rollbackError instanceof Error ? rollbackError : true),
      );
      return rethrowUnavailable(error);
    }
  }
}
