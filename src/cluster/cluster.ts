/**
 * The `Cluster` port: what a node needs to know of the other nodes sharing its database. With SQLite
 * there are none (`single-node.ts`); with PostgreSQL (`store/postgres/postgres-cluster.ts`) nodes
 * register, hold leases, recover the tasks of nodes whose lease expired, and hear each other's news.
 */
import type { Lane } from "../domain/lane.js";
import type { NodeRecord } from "../store/node-registry.js";

export type { NodeRecord } from "../store/node-registry.js";

/** What the other nodes tell this one. */
export interface ClusterEvents {
  /** Tasks were queued in the lane (or queued again after their node died). */
  laneReady(lane: Lane): void;
  /** A task a caller waits on started. */
  taskStarted(taskId: string): void;
  /** A task a caller waits on ended. */
  taskEnded(taskId: string): void;
  /** Stop the task's running attempt, if it runs here. */
  cancelRequested(taskId: string): void;
  /** A function was deployed, rolled back or changed through another node. */
  functionChangedElsewhere(project: string, name: string, sandboxesStale: boolean): void;
  /** Time to look for what a lost notification would have said. */
  poll(): void;
  /**
   * The tasks this node has started and not yet recorded the end of. A task the database shows running
   * on this node, claimed a while ago and not among them, was lost track of (a claim's answer cut off
   * by a database outage, say): it is recovered like a dead node's.
   */
  ownTaskIds(): string[];
}

export interface Cluster {
  readonly nodeId: string;
  /** Registers this node and starts its heartbeats; `events` is called from then on. */
  join(events: ClusterEvents): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;
  /**
   * Asks the node running the task to stop its attempt: true when a live node runs it and was asked
   * (it ends the attempt `cancelled`); false when none does (no other nodes, or it runs nowhere).
   */
  requestCancel(taskId: string): Promise<boolean>;
  /**
   * Tells the other nodes that a function changed (their cached settings are stale); resolves once the
   * news is sent, so that a caller answered after it finds every node told (best effort: a lost
   * announcement is made up for by the next poll).
   */
  announceFunctionChanged(project: string, name: string, sandboxesStale: boolean): Promise<void>;
  /** Gives up this node's place; what it still runs (not handed back) is recovered as `lost` at once. */
  leave(): Promise<void>;
}
