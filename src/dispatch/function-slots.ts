/**
 * Concurrency held by this node, per function: the tasks it has claimed and not finished, whether they
 * run in a sandbox or wait in their lane's local queue. A claimed task is `running` in the store (that
 * is what its lease covers and what the store's `maxConcurrency` check counts on every node), so a task
 * waiting in a local queue holds a slot of its function's limit just like a running one: a node never
 * claims ahead more than its function may run, and the limit stays exact across nodes.
 */
export class FunctionSlots {
  private readonly held = new Map<string, number>();

  /** Slots the function holds on this node. */
  heldBy(functionKey: string): number {
    return this.held.get(functionKey) ?? 0;
  }

  /** What `maxConcurrency` (0: no limit) leaves the function on this node: Infinity without a limit. */
  roomFor(functionKey: string, maxConcurrency: number): number {
    return maxConcurrency > 0 ? Math.max(0, maxConcurrency - this.heldBy(functionKey)) : Infinity;
  }

  take(functionKey: string, count: number): void {
    if (count !== 0) this.held.set(functionKey, this.heldBy(functionKey) + count);
  }

  give(functionKey: string, count: number): void {
    const left = this.heldBy(functionKey) - count;
    if (left > 0) this.held.set(functionKey, left);
    else this.held.delete(functionKey);
  }
}
