/** Deploying a function: check and unpack its archive, read `kiln.json`, store a content-addressed revision. */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Value } from "typebox/value";
import { KilnError } from "../domain/errors.js";
import type { RevisionSpec } from "../domain/function-settings.js";
import { digestFunctionFiles, unpackFunctionArchive } from "../runner/function-archive.js";
import { tierFor } from "../runner/memory-tiers.js";
import type { DeployResult, Store } from "../store/store.js";
import { describeSchemaErrors, fromTypeBoxErrors, summariseFieldErrors } from "./schema-errors.js";
import { Manifest } from "./schemas.js";

export interface DeployRequest {
  project: string;
  name: string;
  archive: Uint8Array;
  /** Where to unpack the archive while it is checked. */
  scratchDir: string;
  /** The node's memory tiers: `memoryMb` must fit in one. */
  memoryTiersMb: readonly number[];
}

export async function deployFunction(store: Store, request: DeployRequest): Promise<DeployResult> {
  const dir = await mkdtemp(path.join(request.scratchDir, "deploy-"));
  try {
    await unpackFunctionArchive(request.archive, dir);
    const manifest = await readManifest(dir);
    if (manifest.memoryMb !== undefined && tierFor(manifest.memoryMb, request.memoryTiersMb) === null) {
      throw new KilnError(
        "INVALID_FUNCTION_CONFIG",
        aboveLargestTier(manifest.memoryMb, request.memoryTiersMb),
      );
    }
    const spec = await resolveSpec(dir, manifest);
    const { name: _name, runtime: _runtime, entry: _entry, ...settings } = manifest;
    return await store.deployRevision({
      project: request.project,
      name: request.name,
      digest: await digestFunctionFiles(dir),
      spec,
      archive: request.archive,
      settings,
      now: new Date(),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function aboveLargestTier(memoryMb: number, tiersMb: readonly number[]): string {
  return `memoryMb ${memoryMb} is above the largest memory tier of this node (${Math.max(...tiersMb)} MB)`;
}

async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path.join(dir, "kiln.json"), "utf8");
  } catch {
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new KilnError(
      "INVALID_FUNCTION_CONFIG",
      `kiln.json is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (!Value.Check(Manifest, value)) {
    const errors = describeSchemaErrors(fromTypeBoxErrors(Value.Errors(Manifest, value)), Manifest, value, {
      root: "kiln.json",
      keyNoun: "key",
    });
    throw new KilnError("INVALID_FUNCTION_CONFIG", `kiln.json: ${summariseFieldErrors(errors)}`, {
      details: { errors },
    });
  }
  return value;
}

async function resolveSpec(dir: string, manifest: Manifest): Promise<RevisionSpec> {
  const runtime = manifest.runtime ?? "node";
  const entry =
    typeof manifest.entry === "string" ? manifest.entry.split(/\s+/).filter(Boolean) : manifest.entry;
  if (runtime === "exec") {
    if (entry === undefined)
      throw new KilnError("INVALID_FUNCTION_CONFIG", "an exec function needs an `entry` command");
    return { runtime, entry };
  }
  const modulePath = entry?.[0] ?? "index.js";
  const isFile = await stat(path.join(dir, modulePath)).then(
    (stats) => stats.isFile(),
    () => false,
  );
  if (!isFile)
    throw new KilnError("INVALID_FUNCTION_CONFIG", `the entry module '${modulePath}' is not in the archive`);
  return { runtime, entry: [modulePath] };
}
