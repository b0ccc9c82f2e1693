/** What every `kiln` subcommand is, and the flags they all share. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { createUsageError } from "./cli-error.js";

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

export interface Command {
  name: string;
  /** One line for `kiln --help`. */
  summary: string;
  /** The full text of `kiln <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(args: string[]): Promise<number>;
}

/** Flags every command takes: where to connect and how to print. */
export const globalOptions = {
  url: { type: "string" },
  token: { type: "string" },
  "data-dir": { type: "string" },
  project: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionsConfig;

export const globalUsage = `Connection (every command):
  --url URL          server URL (env KILN_URL; default http://127.0.0.1:7878)
  --token TOKEN      API token (env KILN_TOKEN; default: the file <data dir>/admin-token)
  --data-dir DIR     where the server keeps its data (env KILN_DATA_DIR; default ./.kiln)
  --project NAME     project (env KILN_PROJECT; default "default")
  --json             print JSON for scripts instead of text`;

/**
 * Parses a command's arguments with the global flags, and checks the positional arguments against
 * the `required` and `optional` names (which only serve the error messages).
 */
export function parseCommandArgs<const T extends OptionsConfig>(
  command: string,
  args: string[],
  options: T,
  positionals: { required: readonly string[]; optional?: readonly string[] },
) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...globalOptions, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw createUsageError(error instanceof Error ? error.message : String(error), command);
  }
  const { required, optional = [] } = positionals;
  const missing = required[parsed.positionals.length];
  if (missing !== undefined) throw createUsageError(`missing <${missing}>`, command);
  const extra = parsed.positionals[required.length + optional.length];
  if (extra !== undefined) throw createUsageError(`unexpected argument '${extra}'`, command);
  return parsed;
}
