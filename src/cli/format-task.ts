/** How the CLI shows a task to a person: one line of outcome, a detail view, a summary of states. */
import type { Task } from "../client/index.js";
import { formatAge, formatDurationMs, shortenDigest } from "./output.js";

/** `"succeeded"`, `"failed (handler_error: boom)"`, `"running 40% (resizing)"`. */
export function describeTaskState(task: Task): string {
  if (task.failure !== null)
    return `${task.state} (${task.failure.kind}: ${firstLine(task.failure.message)})`;
  if (task.state === "running" && task.progress !== null) {
    const message = task.progress.message === undefined ? "" : ` (${task.progress.message})`;
    return `running ${task.progress.percent}%${message}`;
  }
  return task.state;
}

/** Wall time of the task from its first start to its end (or to now while it runs). */
export function formatTaskDuration(task: Task, nowMs: number = Date.now()): string {
  if (task.startedAt === null) return "";
  const endMs = task.finishedAt === null ? nowMs : Date.parse(task.finishedAt);
  return formatDurationMs(endMs - Date.parse(task.startedAt));
}

export function formatTaskDetails(task: Task): string {
  const time = (timestamp: string | null) =>
    timestamp === null ? "-" : `${timestamp} (${formatAge(timestamp)})`;
  const lines = [
    `Task           ${task.id}`,
    `Function       ${task.function} @ ${shortenDigest(task.revision)}`,
    `State          ${describeTaskState(task)}`,
    `Priority       ${task.priority}`,
    `Label          ${task.label ?? "-"}`,
    `Timeout        ${task.timeoutS}s`,
    `Created        ${time(task.createdAt)}`,
    `Run at         ${time(task.runAt)}`,
    `Started        ${time(task.startedAt)}`,
    `Finished       ${time(task.finishedAt)}`,
    `Start latency  ${task.startLatencyMs === null ? "-" : formatDurationMs(task.startLatencyMs)}`,
  ];
  if (task.idempotencyKey !== null) lines.push(`Idempotency    ${task.idempotencyKey}`);
  if (task.attempts.length > 0) {
    lines.push("", "Attempts");
    for (const attempt of task.attempts) {
      const durationMs = Date.parse(attempt.finishedAt) - Date.parse(attempt.startedAt);
      const message = attempt.failure === undefined ? "" : `  ${firstLine(attempt.failure.message)}`;
      lines.push(`  #${attempt.number}  ${attempt.outcome}  ${formatDurationMs(durationMs)}${message}`);
    }
  }
  if (task.state === "succeeded")
    lines.push("", "Result", indent(JSON.stringify(task.result ?? null, null, 2)));
  if (task.failure !== null) {
    lines.push("", "Failure", indent(`${task.failure.kind}: ${task.failure.message}`));
    if (task.failure.stack !== undefined) lines.push(indent(task.failure.stack));
  }
  return lines.join("\n");
}

/** `"succeeded 98, failed 2"`, states in a stable order. */
export function summarizeTaskStates(tasks: readonly Task[]): string {
  const counts = new Map<string, number>();
  for (const task of tasks) counts.set(task.state, (counts.get(task.state) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([state, count]) => `${state} ${count}`)
    .join(", ");
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}
