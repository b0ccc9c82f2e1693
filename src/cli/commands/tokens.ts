/** `kiln tokens`: listing, creating and revoking the API tokens the server keeps. */
import { tokenRoles, type ApiToken, type TokenRole } from "../../client/index.js";
import { createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { formatAge, formatTable, formatUntil, writeJson, writeLine } from "../output.js";
import { parseIntegerFlag } from "../parse-integer-flag.js";
import { runSubcommand } from "../subcommand.js";

const forProjectFlag = { "for-project": { type: "string" } } as const;
const createFlags = {
  ...forProjectFlag,
  role: { type: "string" },
  "expires-in-s": { type: "string" },
} as const;

/** The bounds the server puts on `expiresInS`: a minute to ten years. */
const expiresInS = { min: 60, max: 10 * 365 * 86_400 };

export const tokensCommand: Command = {
  name: "tokens",
  summary: "list, create and revoke API tokens (admin token)",
  usage: `Usage: kiln tokens [list] [--for-project P]
       kiln tokens create <name> --role ROLE [--for-project P] [--expires-in-s N]
       kiln tokens revoke <id>

The API tokens the server keeps; every subcommand needs an admin token. The server stores only a
token's SHA-256, so its secret is printed once, by create, and never again.

  list             every token, newest first, revoked ones too
  create <name>    a new token, known by <name>; prints its secret
  revoke <id>      refuse the token from now on (on every node within a second)

  --role ROLE        admin: everything, in every project; or, within one project:
                       read    read the project, its functions and tasks
                       run     what read may, and create, cancel and retry tasks, invoke
                       deploy  what run may, and deploy, change and roll back functions
  --for-project P    the project the token works in: required for deploy, run and read, refused for
                     admin; with list, show only that project's tokens. (Not --project: that global
                     flag names the project other commands work in.)
  --expires-in-s N   seconds until the token expires, ${expiresInS.min}..${expiresInS.max} (default: never)`,

  run: (args) =>
    runSubcommand(
      "tokens",
      args,
      { list: listTokens, create: createToken, revoke: revokeToken },
      { flags: createFlags, defaultName: "list" },
    ),
};

async function listTokens(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("tokens", args, forProjectFlag, { required: [] });
  const tokens = await (await connectClient(values)).listTokens({ project: values["for-project"] });
  if (values.json) {
    writeJson({ tokens });
    return 0;
  }
  if (tokens.length === 0) {
    writeLine("No tokens. Create one with `kiln tokens create <name> --role ROLE`.");
    return 0;
  }
  const nowMs = Date.now();
  const rows = tokens.map((token) => [
    token.id,
    token.name,
    token.role,
    token.project ?? "all",
    formatExpiry(token, nowMs),
    token.lastUsedAt === null ? "never" : formatAge(token.lastUsedAt, nowMs),
    token.revokedAt === null ? "" : formatAge(token.revokedAt, nowMs),
  ]);
  writeLine(formatTable(["ID", "NAME", "ROLE", "PROJECT", "EXPIRES", "LAST USED", "REVOKED"], rows));
  return 0;
}

async function createToken(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("tokens", args, createFlags, { required: ["name"] });
  const role = parseRoleFlag(values.role);
  const project = values["for-project"];
  if (role === "admin" && project !== undefined) {
    throw createUsageError("an admin token works in every project: leave out --for-project", "tokens");
  }
  if (role !== "admin" && project === undefined) {
    throw createUsageError(
      `a '${role}' token needs --for-project P, the project it works in; --project does not set it`,
      "tokens",
    );
  }
  const input = {
    name: positionals[0] as string,
    role,
    project,
    expiresInS: parseIntegerFlag("tokens", "expires-in-s", values["expires-in-s"], expiresInS),
  };
  const { token, secret } = await (await connectClient(values)).createToken(input);
  if (values.json) {
    writeJson({ token, secret });
    return 0;
  }
  const scope = token.project === null ? "every project" : `project ${token.project}`;
  const expiry = token.expiresAt === null ? "never expires" : `expires ${formatUntil(token.expiresAt)}`;
  writeLine(`Created token ${token.id} (${token.name}): ${token.role} in ${scope}, ${expiry}.`);
  writeLine(`Secret: ${secret}`);
  writeLine(
    "It will not be shown again (the server keeps only its SHA-256): store it now, e.g. as KILN_TOKEN.",
  );
  return 0;
}

async function revokeToken(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("tokens", args, {}, { required: ["id"] });
  const token = await (await connectClient(values)).revokeToken(positionals[0] as string);
  if (values.json) writeJson(token);
  else writeLine(`Revoked token ${token.id} (${token.name}): every node refuses it within a second.`);
  return 0;
}

function parseRoleFlag(raw: string | undefined): TokenRole {
  const roles = tokenRoles.join(", ");
  if (raw === undefined) throw createUsageError(`create needs --role, one of ${roles}`, "tokens");
  const role = tokenRoles.find((candidate) => candidate === raw);
  if (role === undefined) throw createUsageError(`--role must be one of ${roles}, got '${raw}'`, "tokens");
  return role;
}

function formatExpiry(token: ApiToken, nowMs: number): string {
  if (token.expiresAt === null) return "never";
  if (Date.parse(token.expiresAt) <= nowMs) return `expired ${formatAge(token.expiresAt, nowMs)}`;
  return formatUntil(token.expiresAt, nowMs);
}
