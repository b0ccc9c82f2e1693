/** `kiln functions`, `kiln revisions`, `kiln rollback`: what is deployed, and going back to an earlier revision. */
import type { KilnClient } from "../../client/index.js";
import { CliError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { formatAge, formatBytes, formatTable, shortenDigest, writeJson, writeLine } from "../output.js";

export const functionsCommand: Command = {
  name: "functions",
  summary: "list the project's functions",
  usage: `Usage: kiln functions

Lists the project's functions with their current revision and settings.`,

  async run(args) {
    const { values } = parseCommandArgs("functions", args, {}, { required: [] });
    const functions = await (await connectClient(values)).listFunctions();
    if (values.json) {
      writeJson({ functions });
      return 0;
    }
    if (functions.length === 0) {
      writeLine("No functions yet: deploy one with `kiln deploy <dir>`.");
      return 0;
    }
    const rows = functions.map((fn) => [
      fn.name,
      shortenDigest(fn.currentRevision),
      fn.runtime,
      `${fn.memoryMb} MB`,
      `${fn.timeoutS}s`,
      fn.maxConcurrency === 0 ? "unlimited" : String(fn.maxConcurrency),
      String(fn.retries),
      fn.paused ? "paused" : "",
      formatAge(fn.updatedAt),
    ]);
    const headers = ["NAME", "REVISION", "RUNTIME", "MEMORY", "TIMEOUT", "CONCURRENCY", "RETRIES", "PAUSED"];
    writeLine(formatTable([...headers, "UPDATED"], rows));
    return 0;
  },
};

export const revisionsCommand: Command = {
  name: "revisions",
  summary: "list a function's revisions, newest first",
  usage: `Usage: kiln revisions <function>

Lists the function's revisions, newest first; * marks the current one.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs("revisions", args, {}, { required: ["function"] });
    const revisions = await (await connectClient(values)).listRevisions(positionals[0] as string);
    if (values.json) {
      writeJson({ revisions });
      return 0;
    }
    const rows = revisions.map((revision) => [
      revision.current ? "*" : " ",
      shortenDigest(revision.digest),
      revision.runtime,
      Array.isArray(revision.entry) ? revision.entry.join(" ") : revision.entry,
      formatBytes(revision.sizeBytes),
      formatAge(revision.createdAt),
    ]);
    writeLine(formatTable(["", "REVISION", "RUNTIME", "ENTRY", "SIZE", "CREATED"], rows));
    return 0;
  },
};

export const rollbackCommand: Command = {
  name: "rollback",
  summary: "make an earlier revision of a function the current one",
  usage: `Usage: kiln rollback <function> <digest>

Makes the revision with this digest current; new tasks run it. A unique prefix of the digest (such as
the 12 characters \`kiln revisions\` shows) is enough.`,

  async run(args) {
    const { values, positionals } = parseCommandArgs(
      "rollback",
      args,
      {},
      { required: ["function", "digest"] },
    );
    const [name, digest] = positionals as [string, string];
    const client = await connectClient(values);
    const updated = await client.rollbackFunction(name, await resolveRevisionDigest(client, name, digest));
    if (values.json) writeJson(updated);
    else writeLine(`${name} now runs revision ${shortenDigest(updated.currentRevision)}`);
    return 0;
  },
};

/** Expands a digest prefix to the one revision it matches; a full or unmatched digest goes as is. */
async function resolveRevisionDigest(client: KilnClient, name: string, digest: string): Promise<string> {
  if (digest.length >= 64) return digest;
  const withoutAlgorithm = (text: string) => text.replace(/^sha256:/, "");
  const matches = (await client.listRevisions(name)).filter((revision) =>
    withoutAlgorithm(revision.digest).startsWith(withoutAlgorithm(digest)),
  );
  if (matches.length > 1) {
    throw new CliError("AMBIGUOUS_REVISION", `'${digest}' matches ${matches.length} revisions of ${name}`);
  }
  return matches[0]?.digest ?? digest;
}
