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
  /** The highest priority among its waiting tasks; -1 when none waits any more. */
  topPriority(): number;
}

interface Wait {
  /** Sandboxes it still lacks. */
  need: number;
}

export class RoomWaitlist<L extends WaitingLane = WaitingLane> {
  private readonly waiting = new Map<L, Wait>();
  /** Lanes a sandbox made way for, until they next try to grow (`wait` or `leave`). */
  private readonly madeWayFor = new Set<L>();

  wait(lane: L, need: number): void {
    this.madeWayFor.delete(lane);
    if (need > 0) this.waiting.set(lane, { need });
    else this.waiting.delete(lane);
  }

  leave(lane: L): void {
    this.madeWayFor.delete(lane);
    this.waiting.delete(lane);
  }

  /**
   * Whether a sandbox is on its way to the lane though none is starting yet: it waits for one of a lower
   * class to finish its task, or one already stopped to make way for it (admission counts on it).
   */
  expectsRoom(lane: L): boolean {
    return this.waiting.has(lane) || this.madeWayFor.has(lane);
  }

  /**
   * Whether a freed sandbox of `lane`, whose next task has `nextPriority` (-1 for none), should be stopped
   * to make room for a lane waiting with a higher class. When it should, one sandbox of that lane's need
   * is counted as on its way.
   */
  yieldsRoom(lane: L, nextPriority: number): boolean {
    let best: { lane: L; wait: Wait; priority: number } | undefined;
    for (const [other, wait] of this.waiting) {
      // Read now: its tasks may have started, gone back or been cancelled since it began to wait.
      const priority = other.topPriority();
      if (priority < 0) this.waiting.delete(other);
      if (other === lane || priority <= nextPriority) continue;
      if (best === undefined || priority > best.priority) best = { lane: other, wait, priority };
    }
    if (best === undefined) return false;
    this.madeWayFor.add(best.lane);
    best.wait.need -= 1;
    if (best.wait.need <= 0) this.waiting.delete(best.lane);
    return true;
  }

  /** The waiting lanes, highest class first. */
  lanes(): L[] {
    return [...this.waiting.keys()].sort((a, b) => b.topPriority() - a.topPriority());
  }
}
