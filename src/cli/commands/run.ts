/** `kiln run`: creates one or many tasks of a function, and optionally waits for their results. */
import {
  isTaskFinal,
  type KilnClient,
  type Priority,
  type Task,
  type TaskInput,
} from "../../client/index.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { describeTaskState, summarizeTaskStates } from "../format-task.js";
import { writeJson, writeLine } from "../output.js";
import { parseIntegerFlag } from "../parse-integer-flag.js";
import { startProgressBar } from "../progress-bar.js";
import { readPayload } from "../read-payload.js";
import { waitForTasks } from "../wait-for-tasks.js";

const options = {
  wait: { type: "boolean", short: "w" },
  "wait-timeout": { type: "string" },
  count: { type: "string", short: "n" },
  priority: { type: "string" },
  delay: { type: "string" },
  timeout: { type: "string" },
  label: { type: "string" },
  "idempotency-key": { type: "string" },
} as const;

export const runCommand: Command = {
  name: "run",
  summary: "create tasks of a function, optionally waiting for their results",
  usage: `Usage: kiln run <function> [payload] [--wait] [--count N] [--priority P] [--delay S] [--timeout S]
                [--label L] [--idempotency-key K] [--wait-timeout S]

The payload is read as JSON when it parses (42, true, '{"a":1}'), otherwise sent as a JSON string;
- reads it from stdin. Without the argument no payload is sent.

  -w, --wait              wait for the tasks; prints the result of one task, a summary of many.
                          Exits 1 unless every task succeeded.
  --wait-timeout S        stop waiting after S seconds (default: wait as long as it takes)
  -n, --count N           create N tasks with the same payload (default 1)
  --priority P            0 (default), 1 or 2; higher runs first
  --delay S               seconds before the tasks may run
  --timeout S             seconds an attempt may take (default: the function's timeout)
  --label L               a label to find the tasks by (kiln tasks --label L)
  --idempotency-key K     a repeated key returns the existing task; with --count N the tasks get
                          the keys K-1 … K-N`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("run", args, options, {
      required: ["function"],
      optional: ["payload"],
    });
    const count = parseIntegerFlag("run", "count", values.count, { min: 1 }) ?? 1;
    const waitTimeoutS = parseIntegerFlag("run", "wait-timeout", values["wait-timeout"], { min: 0 });
    const input: TaskInput = {
      function: positionals[0] as string,
      payload: await readPayload(positionals[1]),
      priority: parseIntegerFlag("run", "priority", values.priority, { min: 0, max: 2 }) as
        Priority | undefined,
      delayS: parseIntegerFlag("run", "delay", values.delay, { min: 0 }),
      timeoutS: parseIntegerFlag("run", "timeout", values.timeout, { min: 1 }),
      label: values.label,
      idempotencyKey: values["idempotency-key"],
    };
    const client = await connectClient(values);
    const created = await createCopies(client, input, count);
    if (!values.wait) {
      reportCreated(created, input.function, values.json ?? false);
      return 0;
    }
    const waited = await waitForAll(client, created, waitTimeoutS);
    return reportWaited(waited, count === 1, values.json ?? false);
  },
};

async function createCopies(client: KilnClient, input: TaskInput, count: number): Promise<Task[]> {
  if (count === 1) return [await client.createTask(input)];
  const key = input.idempotencyKey;
  const inputs = Array.from({ length: count }, (_, index) => ({
    ...input,
    idempotencyKey: key === undefined ? undefined : `${key}-${index + 1}`,
  }));
  const bar = startProgressBar("Sending", count);
  try {
    return await client.createTasks(inputs, { onProgress: (sent) => bar.update(sent) });
  } finally {
    bar.stop();
  }
}

async function waitForAll(client: KilnClient, tasks: Task[], timeoutS: number | undefined): Promise<Task[]> {
  const bar = startProgressBar("Waiting", tasks.length);
  try {
    return await waitForTasks(
      client,
      tasks.map((task) => task.id),
      { timeoutS, onProgress: (done) => bar.update(done) },
    );
  } finally {
    bar.stop();
  }
}

function reportCreated(tasks: Task[], functionName: string, json: boolean): void {
  const [first] = tasks;
  if (json) {
    writeJson(tasks.length === 1 ? first : { tasks });
  } else if (tasks.length === 1 && first !== undefined) {
    const existing = first.created === false ? ", existing task for this idempotency key" : "";
    writeLine(`${first.id}  (${functionName}, ${first.state}${existing})`);
  } else {
    const existing = tasks.filter((task) => task.created === false).length;
    const note = existing === 0 ? "" : ` (${existing} already existed)`;
    writeLine(`Created ${tasks.length} tasks of ${functionName}${note}`);
  }
}

/** Prints what the wait found; resolves with the exit code: 0 only if every task succeeded. */
function reportWaited(tasks: Task[], single: boolean, json: boolean): number {
  const unsuccessful = tasks.filter((task) => task.state !== "succeeded");
  const [first] = tasks;
  if (json) {
    writeJson(single ? first : { tasks });
  } else if (single && first !== undefined) {
    if (first.state === "succeeded") writeLine(JSON.stringify(first.result ?? null, null, 2));
    else process.stderr.write(`${describeUnfinished(first)}\n`);
  } else {
    writeLine(summarizeTaskStates(tasks));
    for (const task of unsuccessful.slice(0, 10)) process.stderr.write(`${describeUnfinished(task)}\n`);
    if (unsuccessful.length > 10) process.stderr.write(`… and ${unsuccessful.length - 10} more\n`);
  }
  return unsuccessful.length === 0 ? 0 : 1;
}

function describeUnfinished(task: Task): string {
  const still = isTaskFinal(task) ? "" : "still ";
  return `${task.id}: ${still}${describeTaskState(task)}`;
}
