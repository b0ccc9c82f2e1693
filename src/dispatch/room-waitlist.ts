/**
 * Latency classes between functions sharing a node. A lane that has claimed work but finds no sandbox
 * and no room on the node to start one waits here with the class (priority) of its best waiting task.
 * When a sandbox of another lane frees up and its own next task is of a lower class (or it has none),
 * that sandbox is stopped instead of reused, and the waiting lane starts one in the room it leaves: a
 * sync invoke of function B gets a sandbox within one task of function A, however large A's backlog.
 */
export interface WaitingLane {
  /** Tries again to start its tasks (room may have been freed). */
  pump(): void;
}

interface Wait {
  priority: number;
  /** Sandboxes it still lacks. */
  need: number;
}

export class RoomWaitlist<L extends WaitingLane = WaitingLane> {
  private readonly waiting = new Map<L, Wait>();

  wait(lane: L, priority: number, need: number): void {
    if (need > 0) this.waiting.set(lane, { priority, need });
    else this.waiting.delete(lane);
  }

  leave(lane: L): void {
    this.waiting.delete(lane);
  }

  /**
   * Whether a freed sandbox of `lane`, whose next task has `nextPriority` (-1 for none), should be stopped
   * to make room for a lane waiting with a higher class. When it should, one sandbox of that lane's need
   * is counted as on its way.
   */
  yieldsRoom(lane: L, nextPriority: number): boolean {
    let best: Wait | undefined;
    let bestLane: L | undefined;
    for (const [other, wait] of this.waiting) {
      if (other === lane || wait.priority <= nextPriority) continue;
      if (best === undefined || wait.priority > best.priority) [best, bestLane] = [wait, other];
    }
    if (best === undefined || bestLane === undefined) return false;
    best.need -= 1;
    if (best.need <= 0) this.waiting.delete(bestLane);
    return true;
  }

  /** The waiting lanes, highest class first. */
  lanes(): L[] {
    return [...this.waiting].sort((a, b) => b[1].priority - a[1].priority).map(([lane]) => lane);
  }
}
