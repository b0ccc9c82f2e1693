/** Callers waiting for something to happen to a task (it starts, it finishes), woken the moment it does. */
export class TaskWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves when `notify(taskId)` is called or after `timeoutMs`, whichever comes first. */
  wait(taskId: string, timeoutMs: number): { finished: Promise<void>; cancel: () => void } {
    let wake: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(() => wake(), timeoutMs);
      wake = () => {
        clearTimeout(timer);
        this.waiting.get(taskId)?.delete(wake);
        if (this.waiting.get(taskId)?.size === 0) this.waiting.delete(taskId);
        resolve();
      };
      let set = this.waiting.get(taskId);
      if (set === undefined) this.waiting.set(taskId, (set = new Set()));
      set.add(wake);
    });
    return { finished, cancel: () => wake() };
  }

  /** Ends every wait now: callers read their task again (a poll) or take it as it is (the node stops). */
  releaseAll(): void {
    for (const set of [...this.waiting.values()]) [...set].forEach((wake) => wake());
  }

  notify(taskId: string): void {
    const set = this.waiting.get(taskId);
    if (set !== undefined) [...set].forEach((wake) => wake());
  }
}
