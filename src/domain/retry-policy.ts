/** Where a task goes after an attempt: done, or back in line after its backoff. */
import { computeRetryDelayMs } from "./backoff.js";
import type { FunctionSettings } from "./function-settings.js";
import { finalStateFor, type Attempt, type Failure, type TaskState } from "./task.js";

export type NextState =
  { state: "delayed"; runAt: Date } | { state: Exclude<TaskState, "delayed" | "queued" | "running"> };

/**
 * @param chargedAttempts earlier attempts that counted against the retries (lost ones do not count)
 */
export function decideNextState(
  outcome: Attempt["outcome"],
  failure: Failure | null,
  chargedAttempts: number,
  settings: Pick<FunctionSettings, "retries" | "backoff">,
  now: Date,
): NextState {
  const retry = chargedAttempts + 1;
  const retryable = failure?.retryable === true && outcome !== "cancelled" && outcome !== "succeeded";
  if (retryable && retry <= settings.retries) {
    return {
      state: "delayed",
      runAt: new Date(now.getTime() + computeRetryDelayMs(settings.backoff, retry)),
    };
  }
  const state = finalStateFor(outcome);
  if (state === "delayed" || state === "queued" || state === "running")
    throw new Error(`not a final state: ${state}`);
  return { state };
}
