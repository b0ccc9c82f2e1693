/**
 * The PostgreSQL `NodeRegistry`: the `nodes` table with each node's lease, and the announcements a node
 * makes to the others outside the task path (cancels, function changes). It has its own small pool, so
 * a heartbeat never queues behind claims and enqueues on the store's connections.
 */
import pg from "pg";
import type { NodeRecord, NodeRegistry } from "../node-registry.js";
import { Announcer, channelOf } from "./announcements.js";
import { dbNowMs, type Queryable } from "./statements.js";
import { rethrowUnavailable } from "./unavailable.js";

export interface PostgresNodeRegistryOptions {
  connectionString: string;
  /** The store's schema: the `nodes` table lives there and announcements go to its channel. */
  schema: string;
  nodeId: string;
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
  private readonly pool: pg.Pool;
  private readonly db: Queryable;
  private readonly announce: Announcer;
  private closing: Promise<void> | null = null;

  constructor(options: PostgresNodeRegistryOptions) {
    this.nodeId = options.nodeId;
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, Number);
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      // A heartbeat every third of a lease and a listing now and then.
      max: 2,
      application_name: `kiln ${this.nodeId} registry`,
      options: `-c search_path=${pg.escapeIdentifier(options.schema)}`,
      types,
      // Idle connections close after 10 s and never keep the process alive, so a node that left
      // needs no close.
      allowExitOnIdle: true,
    });
    this.pool.on("error", () => {});
    this.db = {
      query: <Row extends pg.QueryResultRow>(config: pg.QueryConfig) =>
        this.pool.query<Row>(config).catch(rethrowUnavailable),
    };
    this.announce = new Announcer(this.db, channelOf(options.schema), this.nodeId);
  }

  async renewLease(leaseMs: number, joining: boolean): Promise<void> {
    // $1 this node, $2 the lease in ms, $3 whether it is (re)starting
    await this.db.query({
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
    await this.db.query({
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

  async announceCancel(taskIds: string[]): Promise<void> {
    this.announce.cancel(taskIds);
    await this.announce.flush();
  }

  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): void {
    this.announce.functionChanged(project, name, sandboxesStale);
  }

  /** Ends the pool once; later calls wait for the same end. */
  close(): Promise<void> {
    this.closing ??= this.announce.flush().then(() => this.pool.end());
    return this.closing;
  }
}
