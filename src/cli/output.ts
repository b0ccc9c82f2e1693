/** Text formatting for people: tables, short digests, ages, durations, sizes. */

/** Left-aligned columns separated by two spaces; `-` stands for an empty cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [headers, ...rows.map((row) => headers.map((_, column) => row[column] || "-"))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)));
  return cells
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join("  "),
    )
    .join("\n");
}

/** The first 12 hex digits of a digest: enough to tell revisions apart and to pass to `rollback`. */
export function shortenDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

/** `"45s ago"`, `"3m ago"`, `"2h ago"`, `"5d ago"`. */
export function formatAge(timestamp: string, nowMs: number = Date.now()): string {
  const ageS = Math.max(0, Math.round((nowMs - Date.parse(timestamp)) / 1000));
  if (Number.isNaN(ageS)) return timestamp;
  return `${formatSpanS(ageS)} ago`;
}

/** `"in 45s"`, `"in 3m"`, `"in 2h"`, `"in 5d"`; a time already past as `formatAge` shows it. */
export function formatUntil(timestamp: string, nowMs: number = Date.now()): string {
  const untilS = Math.round((Date.parse(timestamp) - nowMs) / 1000);
  if (Number.isNaN(untilS)) return timestamp;
  return untilS > 0 ? `in ${formatSpanS(untilS)}` : formatAge(timestamp, nowMs);
}

function formatSpanS(spanS: number): string {
  if (spanS < 60) return `${spanS}s`;
  if (spanS < 3600) return `${Math.floor(spanS / 60)}m`;
  if (spanS < 86_400) return `${Math.floor(spanS / 3600)}h`;
  return `${Math.floor(spanS / 86_400)}d`;
}

/** `"850ms"`, `"12.3s"`, `"4m 05s"`. */
export function formatDurationMs(durationMs: number): string {
  if (durationMs < 1000) return `${Math.round(durationMs)}ms`;
  if (durationMs < 60_000) return `${(durationMs / 1000).toFixed(1)}s`;
  const totalS = Math.round(durationMs / 1000);
  return `${Math.floor(totalS / 60)}m ${String(totalS % 60).padStart(2, "0")}s`;
}

/** `"512 B"`, `"12.5 KiB"`, `"3.1 MiB"`. */
export function formatBytes(sizeBytes: number): string {
  if (sizeBytes < 1024) return `${sizeBytes} B`;
  if (sizeBytes < 1024 * 1024) return `${(sizeBytes / 1024).toFixed(1)} KiB`;
  return `${(sizeBytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export function writeLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
