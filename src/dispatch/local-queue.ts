/**
 * A lane's local queue: tasks claimed ahead (they are `running` in the store, covered by this node's
 * lease) that wait in memory for one of the lane's sandboxes. Highest class first, FIFO within a class;
 * every `oldestFirstEvery`-th start goes to a task claimed in "oldest" order, whatever its class, so the
 * one-in-five-oldest rule of the store's claims still holds once tasks wait here.
 */
import type { ClaimedTask, ClaimOrder } from "../store/store.js";

/** One start in this many goes to the oldest waiting task, whatever its priority. */
export const oldestFirstEvery = 5;

export class LocalQueue {
  /** By priority, highest first; FIFO within a priority. */
  private readonly byClass: ClaimedTask[] = [];
  /** Claimed in "oldest" order: served one start in `oldestFirstEvery`. */
  private readonly oldest: ClaimedTask[] = [];
  private starts = 0;

  get size(): number {
    return this.byClass.length + this.oldest.length;
  }

  add(tasks: readonly ClaimedTask[], order: ClaimOrder): void {
    if (order === "oldest") {
      this.oldest.push(...tasks);
      return;
    }
    for (const task of tasks) {
      // After the last task of the same or a higher priority (tasks arrive mostly in priority order).
      let index = this.byClass.length;
      while (index > 0 && (this.byClass[index - 1] as ClaimedTask).priority < task.priority) index -= 1;
      this.byClass.splice(index, 0, task);
    }
  }

  /** The task the next free sandbox of the lane runs; undefined when none waits. */
  next(): ClaimedTask | undefined {
    this.starts += 1;
    const oldestTurn = this.starts % oldestFirstEvery === 0;
    if (oldestTurn || this.byClass.length === 0) return this.oldest.shift() ?? this.byClass.shift();
    return this.byClass.shift();
  }

  /** The highest priority waiting; -1 when none waits. */
  topPriority(): number {
    const first = this.byClass[0]?.priority ?? -1;
    return this.oldest.reduce((top, task) => Math.max(top, task.priority), first);
  }

  /** The lowest priority waiting; Infinity when none waits. */
  lowestPriority(): number {
    const last = this.byClass.at(-1)?.priority ?? Infinity;
    return this.oldest.reduce((low, task) => Math.min(low, task.priority), last);
  }

  has(taskId: string): boolean {
    return this.byClass.some((task) => task.id === taskId) || this.oldest.some((task) => task.id === taskId);
  }

  ids(): string[] {
    return [...this.byClass, ...this.oldest].map((task) => task.id);
  }

  /** Takes the task out (to hand it back or cancel it); undefined when it does not wait here. */
  remove(taskId: string): ClaimedTask | undefined {
    for (const list of [this.byClass, this.oldest]) {
      const index = list.findIndex((task) => task.id === taskId);
      if (index >= 0) return list.splice(index, 1)[0];
    }
    return undefined;
  }

  /** Takes out up to `count` tasks of the lowest priorities below `priority` (newest first). */
  removeBelow(priority: number, count: number): ClaimedTask[] {
    const taken: ClaimedTask[] = [];
    while (taken.length < count) {
      const last = this.byClass.at(-1);
      if (last === undefined || last.priority >= priority) break;
      taken.push(this.byClass.pop() as ClaimedTask);
    }
    return taken;
  }

  /** Empties the queue. */
  removeAll(): ClaimedTask[] {
    return [...this.byClass.splice(0), ...this.oldest.splice(0)];
  }
}
