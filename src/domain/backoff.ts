/** Retry backoff: how long a failed task waits before its next attempt. */

export interface Backoff {
  type: "fixed" | "exponential";
  /** Delay before the first retry. */
  delayMs: number;
  /** Upper bound of any delay (exponential growth stops here). */
  maxDelayMs: number;
}

export const defaultBackoff: Backoff = { type: "exponential", delayMs: 1000, maxDelayMs: 60_000 };

/** The delay before retry number `retry` (1 for the first retry). */
export function computeRetryDelayMs(backoff: Backoff, retry: number): number {
  const raw = backoff.type === "fixed" ? backoff.delayMs : backoff.delayMs * 2 ** (retry - 1);
  return Math.min(raw, backoff.maxDelayMs);
}
