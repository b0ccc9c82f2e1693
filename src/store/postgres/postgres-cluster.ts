/**
 * Many nodes on one PostgreSQL database. Each node registers in `nodes` and renews its lease there;
 * a node whose lease has expired (by the database's clock) is taken for dead, and any live node records
 * its running attempts as `lost` and queues them again. News travels by LISTEN/NOTIFY on one
 * connection, reopened when it drops; a poll every `pollIntervalMs` makes up for lost notifications.
 */
import pg from "pg";
import type { Cluster, ClusterEvents, NodeRecord } from "../../cluster/cluster.js";
import { channelOf, parseAnnouncement } from "./announcements.js";
import { dbNowMs, type PostgresStore } from "./postgres-store.js";

export interface PostgresClusterOptions {
  store: PostgresStore;
  /** The store's database: the connection that listens is opened on it. */
  connectionString: string;
  leaseTtlMs: number;
  pollIntervalMs: number;
  /** Passed on to the recovery of a dead node's tasks (see `Store.recoverInterruptedTasks`). */
  maxLostAttempts: number;
  /** A heartbeat, recovery or listening connection failed; the node carries on and tries again. */
  onError?: (error: unknown) => void;
}

interface NodeRow {
  id: string;
  started_at: number;
  heartbeat_at: number;
  lease_expires_at: number;
  alive: boolean;
}

const maxReconnectDelayMs = 2000;
/** A database that has not answered a connection attempt by then is treated as unreachable. */
const connectTimeoutMs = 5000;
/** A task of this node's it does not know of is taken for lost once claimed this many leases ago. */
const orphanAfterLeases = 2;

export class PostgresCluster implements Cluster {
  readonly nodeId: string;
  private readonly store: PostgresStore;
  private events: ClusterEvents | null = null;
  private listener: pg.Client | null = null;
  private reconnectDelayMs = 50;
  private readonly timers: NodeJS.Timeout[] = [];
  /**
   * Since when this node's heartbeats have succeeded without a break (null while they fail). A node
   * judges the others' leases only after a whole lease of its own heartbeats: when the database comes
   * back from an outage, the nodes that were alive through it first get their chance to renew.
   */
  private healthySince: number | null = null;
  private left = false;
  /**
   * The heartbeat's own connection: API traffic that fills the store's pools must not delay the
   * renewal of the lease. A renewal slower than a third of the lease is given up (the next one comes
   * then), both connecting and running, so a hung connection cannot hold the heartbeat.
   */
  private readonly leasePool: pg.Pool;

  constructor(private readonly options: PostgresClusterOptions) {
    this.store = options.store;
    this.nodeId = options.store.nodeId;
    const renewalMs = Math.round(options.leaseTtlMs / 3);
    this.leasePool = new pg.Pool({
      connectionString: options.connectionString,
      max: 1,
      application_name: `kiln ${this.nodeId} lease`,
      options: `-c search_path=${pg.escapeIdentifier(options.store.schema)} -c statement_timeout=${renewalMs}`,
      connectionTimeoutMillis: renewalMs,
      query_timeout: renewalMs,
    });
    this.leasePool.on("error", (error) => this.options.onError?.(error));
  }

  async join(events: ClusterEvents): Promise<void> {
    this.events = events;
    await this.renewLease(true);
    await this.listen();
    const { leaseTtlMs, pollIntervalMs } = this.options;
    this.every(leaseTtlMs / 3, () => this.heartbeat());
    this.every(pollIntervalMs, () => events.poll());
  }

  async listNodes(): Promise<NodeRecord[]> {
    const { rows } = await this.store.db.query<NodeRow>({
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

  /**
   * True when the task runs on another node whose lease is alive, which is then told to stop it (it
   * ends the attempt as `cancelled`, and the end is announced). False when no live node runs it: a
   * dead node's task is recovered with its lease, and nobody would hear the request.
   */
  async requestCancel(taskId: string): Promise<boolean> {
    // $1 the task, $2 this node
    const { rows } = await this.store.db.query<{ alive: boolean }>({
      text: `SELECT n.lease_expires_at > ${dbNowMs} AS alive
               FROM tasks t JOIN nodes n ON n.id = t.node_id
               WHERE t.id = $1 AND t.state = 'running' AND t.node_id <> $2`,
      values: [taskId, this.nodeId],
    });
    if (rows[0]?.alive !== true) return false;
    this.store.announce.cancel([taskId]);
    await this.store.announce.flush();
    return true;
  }

  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void> {
    this.store.announce.functionChanged(project, name, sandboxesStale);
    return this.store.announce.flush();
  }

  /**
   * Gives up the lease. A graceful stop has handed back what this node ran (`Store.handBackTasks`);
   * anything still running here (the hand-back failed, or nobody made it) is recorded `lost` and
   * queued again now rather than after the lease.
   */
  async leave(): Promise<void> {
    this.left = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.listener?.end().catch(() => {});
    await this.leasePool.end().catch(() => {});
    await this.store.recoverInterruptedTasks(new Date(), this.options.maxLostAttempts);
    // $1 this node
    await this.store.db.query({
      text: `UPDATE nodes SET lease_expires_at = ${dbNowMs} WHERE id = $1`,
      values: [this.nodeId],
    });
  }

  private every(ms: number, work: () => unknown): void {
    this.timers.push(setInterval(work, ms).unref());
  }

  /**
   * Renews the lease, then (when healthy for a lease) recovers the tasks of nodes whose lease expired
   * and this node's own that it lost track of.
   */
  private async heartbeat(): Promise<void> {
    try {
      await this.renewLease(false);
      this.healthySince ??= Date.now();
      if (Date.now() - this.healthySince < this.options.leaseTtlMs) return;
      const { maxLostAttempts, leaseTtlMs } = this.options;
      const now = new Date();
      for (const recovery of [
        await this.store.recoverExpiredLeases(now, maxLostAttempts),
        await this.store.recoverOrphanedTasks(
          now,
          maxLostAttempts,
          this.events?.ownTaskIds() ?? [],
          new Date(now.getTime() - orphanAfterLeases * leaseTtlMs),
        ),
      ]) {
        for (const lane of recovery.lanes) this.events?.laneReady(lane);
        for (const id of recovery.ended) this.events?.taskEnded(id);
      }
    } catch (error) {
      this.healthySince = null;
      this.options.onError?.(error);
    }
  }

  private async renewLease(joining: boolean): Promise<void> {
    // $1 this node, $2 the lease in ms, $3 whether it is (re)starting
    await this.leasePool.query({
      name: "kiln_renew_lease",
      text: `INSERT INTO nodes (id, started_at, heartbeat_at, lease_expires_at)
               VALUES ($1, ${dbNowMs}, ${dbNowMs}, ${dbNowMs} + $2)
             ON CONFLICT (id) DO UPDATE
               SET started_at = CASE WHEN $3 THEN excluded.started_at ELSE nodes.started_at END,
                   heartbeat_at = excluded.heartbeat_at, lease_expires_at = excluded.lease_expires_at`,
      values: [this.nodeId, Math.round(this.options.leaseTtlMs), joining],
    });
  }

  /** Opens the listening connection; when it drops, it is opened again and a poll covers the gap. */
  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: `kiln ${this.nodeId} listener`,
      connectionTimeoutMillis: connectTimeoutMs,
    });
    client.on("notification", (message) => this.hear(message.payload));
    client.on("error", (error) => {
      this.options.onError?.(error);
      this.reconnect(client);
    });
    client.on("end", () => this.reconnect(client));
    this.listener = client;
    await client.connect();
    await client.query(`LISTEN ${pg.escapeIdentifier(channelOf(this.store.schema))}`);
    this.reconnectDelayMs = 50;
  }

  private reconnect(broken: pg.Client): void {
    if (this.left || this.listener !== broken) return;
    this.listener = null;
    broken.removeAllListeners();
    broken.on("error", () => {});
    void broken.end().catch(() => {});
    const delayMs = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(delayMs * 2, maxReconnectDelayMs);
    setTimeout(() => {
      if (this.left) return;
      this.listen().then(
        () => this.events?.poll(),
        (error: unknown) => {
          this.options.onError?.(error);
          if (this.listener !== null) this.reconnect(this.listener);
        },
      );
    }, delayMs).unref();
  }

  private hear(payload: string | undefined): void {
    const announcement = parseAnnouncement(payload);
    const events = this.events;
    // A node acted on its own news when it made it.
    if (announcement === null || events === null || announcement.from === this.nodeId) return;
    for (const [project, functionName, revision] of announcement.lanes) {
      events.laneReady({ project, functionName, revision });
    }
    for (const id of announcement.started) events.taskStarted(id);
    for (const id of announcement.ended) events.taskEnded(id);
    for (const id of announcement.cancel) events.cancelRequested(id);
    for (const [project, name, stale] of announcement.functions) {
      events.functionChangedElsewhere(project, name, stale);
    }
  }
}
