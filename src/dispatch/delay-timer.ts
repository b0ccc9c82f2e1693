/**
 * One timer for the earliest run time of a delayed task or retry; the store holds the rest (indexed by
 * run time), so the timer survives restarts and nothing has to poll.
 */
export class DelayTimer {
  private timer: NodeJS.Timeout | null = null;
  private at = Infinity;

  constructor(private readonly onDue: () => void) {}

  /** Makes sure the timer fires no later than `runAt`. */
  arm(runAt: Date): void {
    const at = runAt.getTime();
    if (at >= this.at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.at = at;
    // Node timers cap at ~24.8 days; a longer wait simply re-arms when it fires.
    const delay = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.at = Infinity;
      this.onDue();
    }, delay);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.at = Infinity;
  }
}
