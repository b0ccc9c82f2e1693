/** Bounded polling for kernel state that has no cheap notification (cgroup emptiness, freezer state). */
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Calls `check` until it returns true (→ true) or `deadline` (a `performance.now()` time in ms) has passed
 * (→ false). Checks at least once, and once more at the deadline, so a late success is not missed.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  deadline: number,
  intervalMs: number,
): Promise<boolean> {
  for (;;) {
    if (await check()) return true;
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) return false;
    await sleep(Math.min(intervalMs, remainingMs));
  }
}
