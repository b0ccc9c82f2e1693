/** A plan's limits for people: as table cells, one per limit, or as one line. */
import type { PlanLimits } from "../client/index.js";

/** Memory, timeout and payload limits, `""` for none (which `formatTable` shows as `-`). */
export function formatPlanLimitCells(limits: PlanLimits): [memory: string, timeout: string, payload: string] {
  return [
    limits.maxMemoryMb === null ? "" : `${limits.maxMemoryMb} MiB`,
    limits.maxTimeoutS === null ? "" : `${limits.maxTimeoutS}s`,
    limits.maxPayloadBytes === null ? "" : formatExactBytes(limits.maxPayloadBytes),
  ];
}

/** A cell of `formatPlanLimitCells` in words: `"at most 256 MiB"` or `"not limited"`. */
export function describePlanLimit(cell: string): string {
  return cell === "" ? "not limited" : `at most ${cell}`;
}

/** `"memory at most 256 MiB, timeout at most 60s, payload not limited"`. */
export function describePlanLimits(limits: PlanLimits): string {
  const [memory, timeout, payload] = formatPlanLimitCells(limits).map(describePlanLimit);
  return `memory ${memory}, timeout ${timeout}, payload ${payload}`;
}

/**
 * `"1 MiB"`, `"64 KiB"`, `"1000000 B"`: never rounded, since a payload one byte over the limit is
 * refused.
 */
function formatExactBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}
