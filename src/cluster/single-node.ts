/** A Kiln of one node (SQLite): nobody else to hear from, and its own tasks recovered at its next start. */
import type { Cluster, NodeRecord } from "./cluster.js";

export class SingleNode implements Cluster {
  readonly nodeId = "local";
  private readonly startedAt = new Date();

  join(): Promise<void> {
    return Promise.resolve();
  }

  listNodes(): Promise<NodeRecord[]> {
    const now = new Date();
    return Promise.resolve([
      { id: this.nodeId, startedAt: this.startedAt, heartbeatAt: now, leaseExpiresAt: now, alive: true },
    ]);
  }

  requestCancel(): Promise<boolean> {
    return Promise.resolve(false);
  }

  announceFunctionChanged(): Promise<void> {
    return Promise.resolve();
  }

  leave(): Promise<void> {
    return Promise.resolve();
  }
}
