/** `kiln tasks`, `task`, `logs`, `cancel`, `retry`: looking at tasks and acting on one. */
import { taskStates, type TaskState } from "../../client/index.js";
import { createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { describeTaskState, formatTaskDetails, formatTaskDuration } from "../format-task.js";
import { formatAge, formatTable, writeJson, writeLine } from "../output.js";
import { parseIntegerFlag } from "../parse-integer-flag.js";

const listOptions = {
  function: { type: "string" },
  state: { type: "string" },
  label: { type: "string" },
  limit: { type: "string" },
  cursor: { type: "string" },
} as const;

export const tasksCommand: Command = {
  name: "tasks",
  summary: "list tasks, newest first",
  usage: `Usage: kiln tasks [--function F] [--state S] [--label L] [--limit N] [--cursor C]

Lists the project's tasks, newest first.

  --function F   only tasks of this function
  --state S      delayed, queued, running, succeeded, failed, timed_out, out_of_memory or cancelled
  --label L      only tasks with this label
  --limit N      at most N tasks, 1..1000 (default 100)
  --cursor C     the next page, as printed at the end of the previous one`,

  async run(args) {
    const { values } = parseCommandArgs("tasks", args, listOptions, { required: [] });
    const client = await connectClient(values);
    const page = await client.listTasks({
      function: values.function,
      state: parseStateFlag(values.state),
      label: values.label,
      limit: parseIntegerFlag("tasks", "limit", values.limit, { min: 1, max: 1000 }),
      cursor: values.cursor,
    });
    if (values.json) {
      writeJson(page);
      return 0;
    }
    if (page.tasks.length === 0) {
      writeLine("No tasks.");
      return 0;
    }
    const rows = page.tasks.map((task) => [
      task.id,
      task.function,
      describeTaskState(task),
      task.label ?? "",
      formatAge(task.createdAt),
      formatTaskDuration(task),
    ]);
    writeLine(formatTable(["ID", "FUNCTION", "STATE", "LABEL", "CREATED", "DURATION"], rows));
    if (page.nextCursor !== null) process.stderr.write(`More: kiln tasks --cursor ${page.nextCursor}\n`);
    return 0;
  },
};

const taskOptions = { wait: { type: "string" } } as const;

export const taskCommand: Command = {
  name: "task",
  summary: "show one task: state, attempts, result or failure",
  usage: `Usage: kiln task <id> [--wait S]

Shows the task's state, times, attempts, and its result or failure.

  --wait S   first wait up to S seconds for the task to end (succeed, fail, time out or be cancelled)`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("task", args, taskOptions, { required: ["id"] });
    const id = positionals[0] as string;
    const waitS = parseIntegerFlag("task", "wait", values.wait, { min: 0 });
    const client = await connectClient(values);
    const task =
      waitS === undefined ? await client.getTask(id) : await client.waitForTask(id, { timeoutS: waitS });
    if (values.json) writeJson(task);
    else writeLine(formatTaskDetails(task));
    return 0;
  },
};

export const logsCommand: Command = {
  name: "logs",
  summary: "print a task's stdout and stderr",
  usage: `Usage: kiln logs <id>

Prints what the task wrote to stdout and stderr, all attempts.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("logs", args, {}, { required: ["id"] });
    const log = await (await connectClient(values)).getTaskLog(positionals[0] as string);
    if (values.json) writeJson({ log });
    else process.stdout.write(log);
    return 0;
  },
};

export const cancelCommand: Command = {
  name: "cancel",
  summary: "cancel a task that has not finished",
  usage: `Usage: kiln cancel <id>

Cancels the task: a queued task never runs, a running one is stopped.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("cancel", args, {}, { required: ["id"] });
    const task = await (await connectClient(values)).cancelTask(positionals[0] as string);
    if (values.json) writeJson(task);
    else writeLine(`${task.id}  ${describeTaskState(task)}`);
    return 0;
  },
};

export const retryCommand: Command = {
  name: "retry",
  summary: "queue a finished task again",
  usage: `Usage: kiln retry <id>

Queues a finished task (succeeded, failed, timed out or cancelled) to run again.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("retry", args, {}, { required: ["id"] });
    const task = await (await connectClient(values)).retryTask(positionals[0] as string);
    if (values.json) writeJson(task);
    else writeLine(`${task.id}  ${describeTaskState(task)}`);
    return 0;
  },
};

function parseStateFlag(raw: string | undefined): TaskState | undefined {
  if (raw === undefined) return undefined;
  const state = taskStates.find((candidate) => candidate === raw);
  if (state === undefined) throw createUsageError(`--state must be one of ${taskStates.join(", ")}`, "tasks");
  return state;
}
