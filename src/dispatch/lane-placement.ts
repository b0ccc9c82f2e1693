/**
 * Where a function's tasks run on a node: the memory tier its sandboxes reserve, and the pool (short or
 * long tasks) its `timeoutS` puts it in — with the rule that keeps a task's `timeoutS` override from
 * escaping that pool.
 */
import type { RevisionSpec } from "../domain/function-settings.js";
import { KilnError } from "../domain/errors.js";
import { tierFor } from "../runner/memory-tiers.js";
import type { LaneConfig } from "../runner/sandbox-pool.js";
import type { NewTask } from "../store/store.js";
import type { CachedFunction, FunctionCache } from "./function-cache.js";

export interface LanePlacementOptions {
  /** The memory tiers sandboxes are sized to. */
  memoryTiersMb: readonly number[];
  /** Functions with a longer timeout than this run in the long pool. */
  longTaskThresholdS: number;
}

export class LanePlacement {
  constructor(
    private readonly options: LanePlacementOptions,
    private readonly functions: FunctionCache,
  ) {}

  /** The tier and pool a function's sandboxes go to. */
  configFor(fn: CachedFunction, spec: RevisionSpec): LaneConfig {
    const { memoryTiersMb, longTaskThresholdS } = this.options;
    const tierMb = tierFor(fn.settings.memoryMb, memoryTiersMb) ?? Math.max(...memoryTiersMb);
    return { spec, settings: fn.settings, tierMb, long: fn.settings.timeoutS > longTaskThresholdS };
  }

  /**
   * A task runs in its function's pool, chosen by the function's `timeoutS`. A `timeoutS` override that
   * would keep a short-pool sandbox busy past the long threshold is refused: such tasks would escape
   * the long pool's share of the budget that keeps long tasks from starving short ones.
   */
  async refuseTimeoutsAboveTheirPool(tasks: NewTask[]): Promise<void> {
    const thresholdS = this.options.longTaskThresholdS;
    for (const task of tasks) {
      if (task.timeoutS <= thresholdS) continue;
      const fn = await this.functions.get({
        project: task.project,
        functionName: task.functionName,
        revision: task.revision,
      });
      if (fn === null || fn.settings.timeoutS > thresholdS) continue;
      throw new KilnError(
        "BAD_REQUEST",
        `timeoutS ${task.timeoutS} is more than ${thresholdS}, the longest a task of '${task.functionName}' ` +
          `may run: the function's own timeoutS (${fn.settings.timeoutS}) keeps it in the pool of short tasks. ` +
          `Ask for at most ${thresholdS}, or set the function's timeoutS above ${thresholdS} so that its ` +
          "tasks run in the long pool",
        { details: { field: "timeoutS", max: thresholdS, functionTimeoutS: fn.settings.timeoutS } },
      );
    }
  }
}
