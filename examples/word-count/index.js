/**
 * Counts words in a text payload (a string, or `{ text, top }`) and returns the most frequent ones.
 * Reports progress on long texts and stops early when the task is cancelled or about to time out.
 */
export default async function wordCount(payload, ctx) {
  const text = typeof payload === "string" ? payload : String(payload?.text ?? "");
  const top =
    typeof payload === "object" && payload !== null && Number.isInteger(payload.top) ? payload.top : 10;
  const counts = new Map();
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    if (ctx.signal.aborted) throw new Error("stopped: the task was cancelled or ran out of time");
    for (const word of line.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
    if (index % 10_000 === 9_999) ctx.progress(Math.round(((index + 1) / lines.length) * 100), "counting");
  }
  const words = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  ctx.log(`${counts.size} distinct words in ${lines.length} lines`);
  return {
    totalWords: words.reduce((sum, [, count]) => sum + count, 0),
    distinctWords: counts.size,
    top: words.slice(0, top).map(([word, count]) => ({ word, count })),
  };
}
