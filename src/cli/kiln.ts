#!/usr/bin/env node
/** The `kiln` command: picks the subcommand, runs it, and turns errors into `code: message` and exit 1. */
import { KilnApiError } from "../client/index.js";
import { CliError, createUsageError } from "./cli-error.js";
import { globalOptions, globalUsage, type Command } from "./command.js";
import { deployCommand } from "./commands/deploy.js";
import { functionsCommand, revisionsCommand, rollbackCommand } from "./commands/functions.js";
import { invokeCommand } from "./commands/invoke.js";
import { plansCommand } from "./commands/plans.js";
import { projectsCommand } from "./commands/projects.js";
import { runCommand } from "./commands/run.js";
import { serveCommand } from "./commands/serve.js";
import { cancelCommand, logsCommand, retryCommand, taskCommand, tasksCommand } from "./commands/tasks.js";
import { tokensCommand } from "./commands/tokens.js";
import { findFirstPositional } from "./subcommand.js";

const commands: readonly Command[] = [
  serveCommand,
  deployCommand,
  functionsCommand,
  revisionsCommand,
  rollbackCommand,
  runCommand,
  invokeCommand,
  tasksCommand,
  taskCommand,
  logsCommand,
  cancelCommand,
  retryCommand,
  projectsCommand,
  plansCommand,
  tokensCommand,
];

function formatUsage(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  const lines = commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`);
  return `Usage: kiln <command> [arguments] [flags]

Commands:
${lines.join("\n")}

${globalUsage}

kiln <command> --help shows the command's arguments and flags.`;
}

async function runKiln(args: string[]): Promise<number> {
  const commandIndex = findFirstPositional(args, globalOptions);
  const wantsHelp = args.includes("--help") || args.includes("-h");
  if (commandIndex === -1) {
    if (wantsHelp) {
      process.stdout.write(`${formatUsage()}\n`);
      return 0;
    }
    process.stderr.write(`${formatUsage()}\n`);
    return 1;
  }
  const name = args[commandIndex];
  const command = commands.find((candidate) => candidate.name === name);
  if (command === undefined) throw createUsageError(`unknown command '${name}'`);
  if (wantsHelp) {
    process.stdout.write(`${command.usage}\n\n${globalUsage}\n`);
    return 0;
  }
  return command.run(args.filter((_, index) => index !== commandIndex));
}

function reportError(error: unknown): void {
  if (error instanceof KilnApiError || error instanceof CliError) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    if (error.code === "UNAUTHORIZED") {
      process.stderr.write(
        "hint: pass --token or set KILN_TOKEN (default: the file <data dir>/admin-token)\n",
      );
    } else if (error.code === "PROJECT_HAS_TASKS") {
      process.stderr.write("hint: --cancel-tasks cancels them first (running tasks are stopped)\n");
    } else if (error.code === "PLAN_IN_USE") {
      process.stderr.write("hint: kiln projects update <project> --plan OTHER (or --plan none) moves one\n");
    } else if (error.code === "NETWORK_ERROR") {
      process.stderr.write(
        "hint: is the server running (kiln serve)? Set --url or KILN_URL to reach another\n",
      );
    }
  } else if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code ?? "ERROR";
    // Node's system errors already start with their code ("ENOENT: no such file or directory …").
    const prefix = error.message.startsWith(code) ? "" : `${code}: `;
    process.stderr.write(`${prefix}${error.message}\n`);
    if (process.env.KILN_DEBUG) process.stderr.write(`${error.stack}\n`);
  } else {
    process.stderr.write(`INTERNAL: ${String(error)}\n`);
  }
}

try {
  // exitCode, not exit(): exiting at once could cut off output still being written to a pipe.
  process.exitCode = await runKiln(process.argv.slice(2));
} catch (error) {
  reportError(error);
  process.exitCode = 1;
}
