/** Concurrency measured from inside tasks: each reports when it ran, and the runs are overlaid. */

export interface Interval {
  startMs: number;
  endMs: number;
}

/** The most intervals that overlap at any instant (one ending exactly when another starts does not overlap). */
export function computeMaxOverlap(intervals: readonly Interval[]): number {
  const events = intervals.flatMap(({ startMs, endMs }) => [
    { atMs: startMs, delta: 1 },
    { atMs: endMs, delta: -1 },
  ]);
  events.sort((a, b) => a.atMs - b.atMs || a.delta - b.delta);
  let current = 0;
  let max = 0;
  for (const event of events) {
    current += event.delta;
    max = Math.max(max, current);
  }
  return max;
}
