/** A task's stdout/stderr, kept up to a bound; the cut is marked so nobody mistakes it for the end. */
export class TaskLog {
  private chunks: string[] = [];
  private chars = 0;
  private truncated = false;

  constructor(private readonly maxChars: number) {}

  append(text: string): void {
    if (this.truncated) return;
    const room = this.maxChars - this.chars;
    if (text.length > room) {
      this.chunks.push(text.slice(0, room), "\n[kiln: log truncated]\n");
      this.truncated = true;
      return;
    }
    this.chunks.push(text);
    this.chars += text.length;
  }

  /** Returns what was written and starts afresh. */
  take(): string {
    const text = this.chunks.join("");
    this.chunks = [];
    this.chars = 0;
    this.truncated = false;
    return text;
  }
}
