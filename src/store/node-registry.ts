/**
 * The `NodeRegistry` port: the nodes sharing one database, each with a lease it renews; a node whose
 * lease has expired is taken for dead (its running attempts are recovered through the `TaskQueue`
 * adapter). Only the PostgreSQL adapter has one (`postgres/postgres-node-registry.ts`): with SQLite
 * there is one node.
 */

export interface NodeRecord {
  id: string;
  startedAt: Date;
  /** The last renewal of its lease. */
  heartbeatAt: Date;
  leaseExpiresAt: Date;
  /** Its lease has not expired. */
  alive: boolean;
}

export interface NodeRegistry {
  readonly nodeId: string;
  /**
   * Registers this node or renews its lease for `leaseMs`, on the database's clock (nodes whose clocks
   * disagree still agree on who has expired). `joining` records a (re)start.
   */
  renewLease(leaseMs: number, joining: boolean): Promise<void>;
  /** Ends this node's lease now: the other nodes take it for gone. */
  endLease(): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;
  /**
   * Asks the node running the task to stop its attempt: true when another node whose lease is alive
   * runs it and was asked (resolves once sent); false when none does (it runs nowhere, here, or on a
   * dead node, whose task is recovered with its lease).
   */
  requestCancel(taskId: string): Promise<boolean>;
  /** Tells the other nodes that a function changed (their cached settings are stale); resolves once sent. */
  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void>;
  /** Closes the registry's connections. */
  close(): Promise<void>;
}
