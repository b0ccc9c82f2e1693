/**
 * Many nodes on one PostgreSQL database. Each node registers in `nodes` and renews its lease there;
 * a node whose lease has expired (by the database's clock) is taken for dead, and any live node records
 * its running attempts as `lost` and queues them again. News travels by LISTEN/NOTIFY on one
 * connection, reopened when it drops; a poll every `pollIntervalMs` makes up for lost notifications.
 */
import pg from "pg";
import type { Cluster, ClusterEvents, NodeRecord } from "../../cluster/cluster.js";
import { channelOf, parseAnnouncement } from "./announcements.js";
import { connectTimeoutMs } from "./postgres-connections.js";
import { PostgresNodeRegistry } from "./postgres-node-registry.js";
import type { PostgresStore, Recovery } from "./postgres-store.js";

export interface PostgresClusterOptions {
  store: PostgresStore;
  /** The store's database: the registry's connections and the one that listens are opened on it. */
  connectionString: string;
  leaseTtlMs: number;
  pollIntervalMs: number;
  /** Passed on to the recovery of a dead node's tasks (see `Store.recoverInterruptedTasks`). */
  maxLostAttempts: number;
  /** A heartbeat, recovery or listening connection failed; the node carries on and tries again. */
  onError?: (error: unknown) => void;
}

const maxReconnectDelayMs = 2000;
/** A task of this node's it does not know of is taken for lost once claimed this many leases ago. */
const orphanAfterLeases = 2;

export class PostgresCluster implements Cluster {
  readonly nodeId: string;
  private readonly store: PostgresStore;
  private readonly registry: PostgresNodeRegistry;
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

  constructor(private readonly options: PostgresClusterOptions) {
    this.store = options.store;
    this.nodeId = options.store.nodeId;
    // The lease is renewed on the registry's own connection, never on the store's pools: API traffic
    // that fills those cannot delay it.
    this.registry = new PostgresNodeRegistry({
      connectionString: options.connectionString,
      schema: options.store.schema,
      nodeId: this.nodeId,
      leaseMs: options.leaseTtlMs,
      onIdleConnectionError: (error) => this.options.onError?.(error),
    });
  }

  async join(events: ClusterEvents): Promise<void> {
    this.events = events;
    await this.renewLease(true);
    await this.listen();
    const { leaseTtlMs, pollIntervalMs } = this.options;
    this.every(leaseTtlMs / 3, () => this.heartbeat());
    this.every(pollIntervalMs, () => events.poll());
  }

  listNodes(): Promise<NodeRecord[]> {
    return this.registry.listNodes();
  }

  /**
   * True when the task runs on another node whose lease is alive, which is then told to stop it (it
   * ends the attempt as `cancelled`, and the end is announced). False when no live node runs it: a
   * dead node's task is recovered with its lease, and nobody would hear the request.
   */
  requestCancel(taskId: string): Promise<boolean> {
    return this.registry.requestCancel(taskId);
  }

  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void> {
    return this.registry.announceFunctionChanged(project, name, sandboxesStale);
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
    await this.store.recoverInterruptedTasks(new Date(), this.options.maxLostAttempts);
    // The registry stays open (the node may still be listed through it); its idle connections close
    // on their own and do not keep the process alive.
    await this.registry.endLease();
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
      // Each recovery's news goes out as soon as it is committed, not after the next one.
      this.tell(await this.store.recoverExpiredLeases(now, maxLostAttempts));
      this.tell(
        await this.store.recoverOrphanedTasks(
          now,
          maxLostAttempts,
          this.events?.ownTaskIds() ?? [],
          new Date(now.getTime() - orphanAfterLeases * leaseTtlMs),
        ),
      );
    } catch (error) {
      this.healthySince = null;
      this.options.onError?.(error);
    }
  }

  /** Wakes the lanes of recovered tasks and tells the waiters of those that ended. */
  private tell(recovery: Recovery): void {
    for (const lane of recovery.lanes) this.events?.laneReady(lane);
    for (const id of recovery.ended) this.events?.taskEnded(id);
  }

  private renewLease(joining: boolean): Promise<void> {
    return this.registry.renewLease(this.options.leaseTtlMs, joining);
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
        () => {
          // A project deleted meanwhile went unheard: look every lane id up again.
          this.store.forgetLaneIds();
          this.events?.poll();
        },
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
    for (const project of announcement.projectsDeleted) this.store.forgetLaneIds(project);
  }
}
