/** Commands made of subcommands (`kiln projects create shop`): finding the subcommand's name and running it. */
import type { ParseArgsConfig } from "node:util";
import { createUsageError } from "./cli-error.js";
import { globalOptions } from "./command.js";

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

/**
 * The index of the first positional argument, or -1: skips flags and the values of those in `options`
 * that take one, so `--project shop list` finds `list`, not `shop`.
 */
export function findFirstPositional(args: readonly string[], options: OptionsConfig): number {
  const takesValue = new Set(
    Object.entries(options)
      .filter(([, option]) => option.type === "string")
      .map(([name]) => `--${name}`),
  );
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] as string;
    if (arg === "--") return index + 1 < args.length ? index + 1 : -1;
    if (takesValue.has(arg)) index += 1;
    else if (!arg.startsWith("-")) return index;
  }
  return -1;
}

/**
 * Runs the subcommand the first positional argument names (`defaultName` when there is none) with the
 * other arguments. `options` are the flags of all the subcommands, so that a flag's value is not taken
 * for a subcommand's name; each subcommand then parses (and checks) its own.
 */
export function runSubcommand(
  command: string,
  args: readonly string[],
  subcommands: Readonly<Record<string, (args: string[]) => Promise<number>>>,
  options: { flags: OptionsConfig; defaultName: string },
): Promise<number> {
  const index = findFirstPositional(args, { ...globalOptions, ...options.flags });
  const name = index === -1 ? options.defaultName : (args[index] as string);
  const run = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (run === undefined) {
    const names = Object.keys(subcommands).join(", ");
    throw createUsageError(`unknown subcommand '${name}' of ${command}; use one of ${names}`, command);
  }
  return run(args.filter((_, argIndex) => argIndex !== index));
}
