/** Where the CLI connects and with which token: flags, then environment, then local defaults. */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createClient, type KilnClient } from "../client/index.js";

export const defaultUrl = "http://127.0.0.1:7878";
export const defaultDataDir = ".kiln";

export interface ConnectionFlags {
  url?: string;
  token?: string;
  "data-dir"?: string;
  project?: string;
}

export interface Connection {
  url: string;
  /** Null when no flag, variable or token file gave one. */
  token: string | null;
  project: string;
}

/**
 * Resolves the server URL (`--url`, `KILN_URL`, the local default), the token (`--token`,
 * `KILN_TOKEN`, then `<data dir>/admin-token`, which a local `kiln serve` writes) and the project.
 */
export async function resolveConnection(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Connection> {
  const url = flags.url ?? nonEmpty(env.KILN_URL) ?? defaultUrl;
  const project = flags.project ?? nonEmpty(env.KILN_PROJECT) ?? "default";
  const token = flags.token ?? nonEmpty(env.KILN_TOKEN) ?? (await readTokenFile(resolveDataDir(flags, env)));
  return { url, token, project };
}

export function resolveDataDir(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flags["data-dir"] ?? nonEmpty(env.KILN_DATA_DIR) ?? defaultDataDir);
}

export async function connectClient(flags: ConnectionFlags): Promise<KilnClient> {
  return createClient(await resolveConnection(flags));
}

async function readTokenFile(dataDir: string): Promise<string | null> {
  try {
    const token = (await readFile(path.join(dataDir, "admin-token"), "utf8")).trim();
    return token === "" ? null : token;
  } catch (error) {
    if (isMissingFile(error)) return null;
    throw error;
  }
}

function isMissingFile(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === "" ? undefined : value;
}
