/**
 * Plans: named sets of limits that projects are held to. A limit that is null is not set. The limits
 * here are checked where settings and tasks come in; nothing on the hot path reads them.
 */
export interface PlanLimits {
  /** The largest memory (MiB) a function of the project may ask for. */
  maxMemoryMb: number | null;
  /** The longest timeout (seconds) a function or one of its tasks may have. */
  maxTimeoutS: number | null;
  /** The largest task payload (bytes of JSON). */
  maxPayloadBytes: number | null;
}

export const noLimits: PlanLimits = { maxMemoryMb: null, maxTimeoutS: null, maxPayloadBytes: null };

/** A setting over its plan's limit, in the words of the field. */
export interface PlanViolation {
  field: "memoryMb" | "timeoutS";
  value: number;
  limit: number;
}

/** The function settings that are over the plan's limits. */
export function planViolations(
  limits: PlanLimits,
  settings: { memoryMb: number; timeoutS: number },
): PlanViolation[] {
  const violations: PlanViolation[] = [];
  if (limits.maxMemoryMb !== null && settings.memoryMb > limits.maxMemoryMb) {
    violations.push({ field: "memoryMb", value: settings.memoryMb, limit: limits.maxMemoryMb });
  }
  if (limits.maxTimeoutS !== null && settings.timeoutS > limits.maxTimeoutS) {
    violations.push({ field: "timeoutS", value: settings.timeoutS, limit: limits.maxTimeoutS });
  }
  return violations;
}
