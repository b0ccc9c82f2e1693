/** A progress bar on stderr for long batches; silent for small ones and when stderr is not a terminal. */
import cliProgress from "cli-progress";

export interface ProgressBar {
  update(done: number): void;
  stop(): void;
}

/** Batches up to this size finish quickly enough that a bar would only flicker. */
export const minTasksForProgressBar = 101;

export function startProgressBar(label: string, total: number): ProgressBar {
  if (total < minTasksForProgressBar || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} | {duration_formatted}`,
      stream: process.stderr,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    update: (done) => bar.update(done),
    stop: () => bar.stop(),
  };
}
