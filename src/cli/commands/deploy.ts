/** `kiln deploy`: packs a function directory, uploads it, and sets its env. */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { CliError, createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { writeJson, writeLine, shortenDigest } from "../output.js";
import { packFunction } from "../../client/pack-function.js";

const options = {
  name: { type: "string" },
  env: { type: "string", multiple: true },
} as const;

export const deployCommand: Command = {
  name: "deploy",
  summary: "upload a function directory as a new revision",
  usage: `Usage: kiln deploy <dir> [--name N] [--env KEY=VALUE ...]

Packs <dir> (leaving out .git and node_modules/.cache) and uploads it. Settings come from <dir>/kiln.json.
Uploading the same content again keeps the current revision.

  --name N          function name (default: "name" in kiln.json, else the directory's name)
  --env KEY=VALUE   set an environment variable; repeat for more. The function's env becomes the "env"
                    of kiln.json plus these, so secrets need not sit in the directory.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("deploy", args, options, { required: ["dir"] });
    const dir = path.resolve(positionals[0] as string);
    const env = parseEnvFlags(values.env ?? []);
    const functionConfig = await readFunctionConfig(dir);
    const name = values.name ?? functionConfig.name ?? path.basename(dir);
    const archive = await packFunction(dir);
    const client = await connectClient(values);
    const deployed = await client.deployFunction(name, archive);
    const updated =
      env === undefined
        ? deployed.function
        : await client.updateFunction(name, { env: { ...functionConfig.env, ...env } });
    if (values.json) {
      writeJson({ ...deployed, function: updated });
      return 0;
    }
    const digest = shortenDigest(updated.currentRevision);
    const status = deployed.created ? "new revision" : "unchanged: same content as the current revision";
    writeLine(`Deployed ${name} at ${digest} (${status}, ${archive.length} bytes packed)`);
    if (env !== undefined) writeLine(`Env keys: ${updated.envKeys.join(", ") || "-"}`);
    return 0;
  },
};

/** The parts of kiln.json the CLI itself reads; the server reads and checks the rest. */
interface FunctionConfigFile {
  name?: string;
  env?: Record<string, string>;
}

async function readFunctionConfig(dir: string): Promise<FunctionConfigFile> {
  const dirStats = await stat(dir).catch(() => null);
  if (dirStats === null || !dirStats.isDirectory()) {
    throw new CliError("INVALID_FUNCTION_DIR", `${dir} is not a directory`);
  }
  let text: string;
  try {
    text = await readFile(path.join(dir, "kiln.json"), "utf8");
  } catch {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CliError(
      "INVALID_FUNCTION_CONFIG",
      `${path.join(dir, "kiln.json")}: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null) return {};
  const { name, env } = parsed as Record<string, unknown>;
  return {
    ...(typeof name === "string" ? { name } : {}),
    ...(typeof env === "object" && env !== null ? { env: env as Record<string, string> } : {}),
  };
}

function parseEnvFlags(pairs: readonly string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const separator = pair.indexOf("=");
    if (separator <= 0) throw createUsageError(`--env takes KEY=VALUE, got '${pair}'`, "deploy");
    env[pair.slice(0, separator)] = pair.slice(separator + 1);
  }
  return env;
}
