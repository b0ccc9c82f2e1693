/** Polling with a deadline, for what the API offers no event for. */
import { setTimeout as sleep } from "node:timers/promises";

export interface PollOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between probes. Default 100 ms. */
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns something other than `undefined`, and resolves with that. Rejects
 * with `what` in the message once `timeoutMs` passes.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: PollOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    await sleep(options.intervalMs ?? 100);
  }
}
