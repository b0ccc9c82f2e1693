/** Memory tiers: a function's `memoryMb` runs in the smallest tier that holds it (its pool). */

export const defaultMemoryTiersMb: readonly number[] = [128, 256, 512, 1024, 2048];

/** The tier for `memoryMb`, or null when it is larger than the largest tier. */
export function tierFor(memoryMb: number, tiersMb: readonly number[]): number | null {
  return [...tiersMb].sort((a, b) => a - b).find((tier) => tier >= memoryMb) ?? null;
}
