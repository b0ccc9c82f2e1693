/** `kiln invoke`: runs a function and prints its result, in one request (synchronous invocation). */
import { KilnApiError, type InvokeOutcome } from "../../client/index.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { writeJson } from "../output.js";
import { parseIntegerFlag } from "../parse-integer-flag.js";
import { readPayload } from "../read-payload.js";

/** Exit code when the task outlived the wait and is still running: scripts can tell it from a failure. */
export const stillRunningExitCode = 3;

/** The API errors that are an outcome of the invocation, not a fault of the call. */
const outcomeErrorCodes: ReadonlySet<string> = new Set([
  "TOO_MANY_REQUESTS",
  "FUNCTION_FAILED",
  "FUNCTION_TIMED_OUT",
]);

const options = {
  wait: { type: "string" },
  timeout: { type: "string" },
  "cancel-on-disconnect": { type: "boolean" },
} as const;

export const invokeCommand: Command = {
  name: "invoke",
  summary: "run a function and print its result (waits in one request)",
  usage: `Usage: kiln invoke <function> [payload] [--wait S] [--timeout S] [--cancel-on-disconnect]

Runs the function at the highest priority and prints its result: JSON pretty-printed, a string as is.
The payload is read as JSON when it parses (42, true, '{"a":1}'), otherwise sent as a JSON string;
- reads it from stdin. Without the argument the function gets null.

  --wait S                 seconds to wait for the result (default 30; the server caps it, 60 by default)
  --timeout S              seconds the attempt may take, 1..3600 (default: the function's timeout)
  --cancel-on-disconnect   cancel the task if this command stops waiting (e.g. Ctrl-C)
  --json                   print the whole outcome as JSON (also for the errors below)

Exit codes: 0 the function succeeded; 3 it is still running after the wait (its task id is printed:
kiln task <id> --wait S waits for it); 1 it failed (FUNCTION_FAILED: <kind>: <message>), timed out
(FUNCTION_TIMED_OUT), no sandbox could take it now (TOO_MANY_REQUESTS, nothing was run: try again
after the time printed), or any other error.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("invoke", args, options, {
      required: ["function"],
      optional: ["payload"],
    });
    const name = positionals[0] as string;
    const waitS = parseIntegerFlag("invoke", "wait", values.wait, { min: 0, max: 3600 });
    const timeoutS = parseIntegerFlag("invoke", "timeout", values.timeout, { min: 1, max: 3600 });
    const payload = await readPayload(positionals[1]);
    const client = await connectClient(values);
    let outcome: InvokeOutcome;
    try {
      outcome = await client.invoke(name, payload, {
        waitS,
        timeoutS,
        cancelOnDisconnect: values["cancel-on-disconnect"],
      });
    } catch (error) {
      if (!(error instanceof KilnApiError && outcomeErrorCodes.has(error.code))) throw error;
      reportOutcomeError(error, values.json ?? false);
      return 1;
    }
    return reportOutcome(name, outcome, values.json ?? false);
  },
};

/** Prints the result or where the task stands; resolves with the exit code. */
function reportOutcome(name: string, outcome: InvokeOutcome, json: boolean): number {
  switch (outcome.status) {
    case "succeeded":
      if (json) writeJson(outcome);
      else writeResult(outcome.result);
      return 0;
    case "pending":
      if (json) writeJson(outcome);
      process.stderr.write(
        `${name} is still ${outcome.task.state} after the wait: task ${outcome.task.id}\n` +
          `See it with: kiln task ${outcome.task.id} (add --wait S to wait for its end)\n`,
      );
      return stillRunningExitCode;
  }
}

/** A string result as is (so it can be piped), anything else as pretty JSON. */
function writeResult(result: unknown): void {
  if (typeof result === "string") {
    process.stdout.write(result.endsWith("\n") ? result : `${result}\n`);
  } else {
    process.stdout.write(`${JSON.stringify(result ?? null, null, 2)}\n`);
  }
}

interface FunctionErrorDetails {
  taskId?: string;
  state?: string;
  failure?: { kind?: string; message?: string } | null;
}

/** `TOO_MANY_REQUESTS: … (retry after 1 s)`, `FUNCTION_FAILED: handler_error: boom`. */
function reportOutcomeError(error: KilnApiError, json: boolean): void {
  if (json) {
    const { code, message, details, retryAfterS } = error;
    writeJson({ error: { code, message, details, retryAfterS } });
  }
  if (error.code === "TOO_MANY_REQUESTS") {
    const retry = error.retryAfterS === null ? "" : ` (retry after ${error.retryAfterS} s)`;
    process.stderr.write(`${error.code}: ${error.message}${retry}\n`);
    return;
  }
  const details = (error.details ?? {}) as FunctionErrorDetails;
  const kind = details.failure?.kind ?? details.state ?? "unknown";
  process.stderr.write(`${error.code}: ${kind}: ${details.failure?.message ?? error.message}\n`);
  if (details.taskId !== undefined) {
    process.stderr.write(`hint: kiln task ${details.taskId} and kiln logs ${details.taskId} show more\n`);
  }
}
