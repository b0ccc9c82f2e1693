/**
 * The PostgreSQL `NodeRegistry`: the `nodes` table with each node's lease, and the announcements a node
 * makes to the others outside the task path (cancels, function changes). It has its own two
 * connections, apart from the store's pools, so API traffic that fills those cannot delay a heartbeat:
 * one renews the lease and does nothing else, the other lists nodes and makes the announcements.
 */
import pg from "pg";
import type { NodeRecord, NodeRegistry } from "../node-registry.js";
import { Announcer, channelOf } from "./announcements.js";
import { connectTimeoutMs, statementTimeoutMs } from "./postgres-connections.js";
import { dbNowMs, type Queryable } from "./statements.js";
import { rethrowUnavailable } from "./unavailable.js";

export interface PostgresNodeRegistryOptions {
  connectionString: string;
  /** The store's schema: the `nodes` table lives there and announcements go to its channel. */
  schema: string;
  nodeId: string;
  /**
   * The lease this node renews every third of. A renewal slower than that third is given up, whether
   * connecting or running (the next one comes then), so a hung connection cannot hold the heartbeat.
   */
  leaseMs: number;
  /** A connection that broke while idle (the database restarted, say); the pool replaces it. */
  onIdleConnectionError?: (error: Error) => void;
}

interface NodeRow {
  id: string;
  started_at: number;
  heartbeat_at: number;
  lease_expires_at: number;
  alive: boolean;
}

export class PostgresNodeRegistry implements NodeRegistry {
  readonly nodeId: string;
  /** The heartbeat's own connection (a pool of one, with timeouts of a third of the lease). */
  private readonly leasePool: pg.Pool;
  private readonly leaseDb: Queryable;
  /** Listings, the cancel check and announcements. */
  private readonly pool: pg.Pool;
  private readonly db: Queryable;
  private readonly announce: Announcer;
  private closing: Promise<void> | null = null;

  constructor(options: PostgresNodeRegistryOptions) {
    this.nodeId = options.nodeId;
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, Number);
    const renewalMs = Math.max(1, Math.round(options.leaseMs / 3));
    const openPool = (
      name: string,
      timeouts: { statementMs: number; queryMs: number; connectMs: number },
    ) => {
      const pool = new pg.Pool({
        connectionString: options.connectionString,
        max: 1,
        application_name: `kiln ${this.nodeId} ${name}`,
        options:
          `-c search_path=${pg.escapeIdentifier(options.schema)} -c statement_timeout=${timeouts.statementMs} ` +
          `-c idle_in_transaction_session_timeout=${statementTimeoutMs} -c jit=off`,
        query_timeout: timeouts.queryMs,
        connectionTimeoutMillis: timeouts.connectMs,
        types,
        // Idle connections close after 10 s and never keep the process alive, so a node that left
        // needs no close.
        allowExitOnIdle: true,
      });
      pool.on("error", options.onIdleConnectionError ?? (() => {}));
      const db: Queryable = {
        query: <Row extends pg.QueryResultRow>(config: pg.QueryConfig) =>
          pool.query<Row>(config).catch(rethrowUnavailable),
      };
      return [pool, db] as const;
    };
    [this.leasePool, this.leaseDb] = openPool("lease", {
      statementMs: renewalMs,
      queryMs: renewalMs,
      connectMs: renewalMs,
    });
    // The client gives up a little after the server's statement timeout, as the store's pools do.
    [this.pool, this.db] = openPool("registry", {
      statementMs: statementTimeoutMs,
      queryMs: statementTimeoutMs + 5000,
      connectMs: connectTimeoutMs,
    });
    this.announce = new Announcer(this.db, channelOf(options.schema), this.nodeId);
  }

  async renewLease(leaseMs: number, joining: boolean): Promise<void> {
    // $1 this node, $2 the lease in ms, $3 whether it is (re)starting
    await this.leaseDb.query({
      name: "kiln_renew_lease",
      text: `INSERT INTO nodes (id, started_at, heartbeat_at, lease_expires_at)
               VALUES ($1, ${dbNowMs}, ${dbNowMs}, ${dbNowMs} + $2)
             ON CONFLICT (id) DO UPDATE
               SET started_at = CASE WHEN $3 THEN excluded.started_at ELSE nodes.started_at END,
                   heartbeat_at = excluded.heartbeat_at, lease_expires_at = excluded.lease_expires_at`,
      values: [this.nodeId, Math.round(leaseMs), joining],
    });
  }

  async endLease(): Promise<void> {
    // $1 this node
    await this.leaseDb.query({
      text: `UPDATE nodes SET lease_expires_at = ${dbNowMs} WHERE id = $1`,
      values: [this.nodeId],
    });
  }

  async listNodes(): Promise<NodeRecord[]> {
    const { rows } = await this.db.query<NodeRow>({
      text: `SELECT id, started_at, heartbeat_at, lease_expires_at, lease_expires_at > ${dbNowMs} AS alive
               FROM nodes ORDER BY started_at, id`,
    });
    return rows.map((row) => ({
      id: row.id,
      startedAt: new Date(row.started_at),
      heartbeatAt: new Date(row.heartbeat_at),
      leaseExpiresAt: new Date(row.lease_expires_at),
      alive: row.alive,
    }));
  }

  async requestCancel(taskId: string): Promise<boolean> {
    // $1 the task, $2 this node: another node runs it (its running row) and its lease is alive
    const { rows } = await this.db.query<{ alive: boolean }>({
      text: `SELECT n.lease_expires_at > ${dbNowMs} AS alive
               FROM tasks t JOIN running r ON r.seq = t.seq JOIN nodes n ON n.id = r.node_id
              WHERE t.id = $1 AND r.node_id <> $2`,
      values: [taskId, this.nodeId],
    });
    if (rows[0]?.alive !== true) return false;
    this.announce.cancel([taskId]);
    await this.announce.flush();
    return true;
  }

  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void> {
    this.announce.functionChanged(project, name, sandboxesStale);
    return this.announce.flush();
  }

  /** Ends the pools once; later calls wait for the same end. */
  close(): Promise<void> {
    this.closing ??= this.announce
      .flush()
      .then(() => Promise.all([this.pool.end(), this.leasePool.end()]))
      .then(() => {});
    return this.closing;
  }
}
