/** Deploying a function: check and unpack its archive, read `kiln.json`, store a content-addressed revision. */
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { Value } from "typebox/value";
import { KilnError } from "../domain/errors.js";
import { defaultSettings, type RevisionSpec } from "../domain/function-settings.js";
import { planViolations } from "../domain/plan.js";
import {
  unpackFunctionArchive,
  type ArchiveLimits,
  type UnpackedFunction,
} from "../runner/function-archive.js";
import { tierFor } from "../runner/memory-tiers.js";
import type { DeployResult, Store } from "../store/store.js";
import { overPlanLimit, type ProjectPlan } from "./project-plans.js";
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
  /** How much the archive may unpack to (default: `defaultArchiveLimits`). */
  archiveLimits?: ArchiveLimits;
  /** The project's plan: the function's settings may not be over its limits. */
  plan: ProjectPlan;
}

/** `kiln.json` holds settings, not data: a larger one is refused before it is read. */
const maxManifestBytes = 1024 * 1024;

export async function deployFunction(store: Store, request: DeployRequest): Promise<DeployResult> {
  const dir = await mkdtemp(path.join(request.scratchDir, "deploy-"));
  try {
    const unpacked = await unpackFunctionArchive(request.archive, dir, request.archiveLimits);
    const manifest = await readManifest(unpacked);
    if (manifest.memoryMb !== undefined && tierFor(manifest.memoryMb, request.memoryTiersMb) === null) {
      throw new KilnError(
        "INVALID_FUNCTION_CONFIG",
        aboveLargestTier(manifest.memoryMb, request.memoryTiersMb),
      );
    }
    await checkPlan(store, request, manifest);
    const spec = resolveSpec(unpacked, manifest);
    const { name: _name, runtime: _runtime, entry: _entry, ...settings } = manifest;
    return await store.deployRevision({
      project: request.project,
      name: request.name,
      digest: unpacked.digest,
      spec,
      archive: request.archive,
      settings,
      now: new Date(),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The settings the function will have (the manifest's over its current ones) within the plan. */
async function checkPlan(store: Store, request: DeployRequest, manifest: Manifest): Promise<void> {
  const { plan } = request;
  if (plan.name === null) return;
  const current = (await store.getFunction(request.project, request.name))?.settings ?? defaultSettings;
  const violations = planViolations(plan.limits, {
    memoryMb: manifest.memoryMb ?? current.memoryMb,
    timeoutS: manifest.timeoutS ?? current.timeoutS,
  });
  if (violations.length > 0) throw overPlanLimit(plan.name, violations, (v) => `kiln.json ${v.field}`);
}

export function aboveLargestTier(memoryMb: number, tiersMb: readonly number[]): string {
  return `memoryMb ${memoryMb} is above the largest memory tier of this node (${Math.max(...tiersMb)} MB)`;
}

async function readManifest(unpacked: UnpackedFunction): Promise<Manifest> {
  const file = unpacked.tree.findFile("kiln.json");
  if (file === null) return {};
  if (file.sizeBytes > maxManifestBytes) {
    throw new KilnError("INVALID_FUNCTION_CONFIG", "kiln.json is larger than 1 MiB; it holds settings only");
  }
  const text = (await unpacked.readFile(file)).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new KilnError("INVALID_FUNCTION_CONFIG", describeJsonError(text, error));
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

/** Where the JSON breaks, without quoting the text: the message must not echo file content. */
function describeJsonError(text: string, error: unknown): string {
  const position = /at position (\d+)/.exec((error as Error).message);
  if (position === null) return "kiln.json is not valid JSON";
  const before = text.slice(0, Number(position[1])).split("\n");
  const column = (before.at(-1)?.length ?? 0) + 1;
  return `kiln.json is not valid JSON (at line ${before.length}, column ${column})`;
}

function resolveSpec(unpacked: UnpackedFunction, manifest: Manifest): RevisionSpec {
  const runtime = manifest.runtime ?? "node";
  const entry =
    typeof manifest.entry === "string" ? manifest.entry.split(/\s+/).filter(Boolean) : manifest.entry;
  if (runtime === "exec") {
    if (entry === undefined)
      throw new KilnError("INVALID_FUNCTION_CONFIG", "an exec function needs an `entry` command");
    return { runtime, entry };
  }
  const modulePath = entry?.[0] ?? "index.js";
  if (unpacked.tree.findFile(modulePath) === null)
    throw new KilnError("INVALID_FUNCTION_CONFIG", `the entry module '${modulePath}' is not in the archive`);
  return { runtime, entry: [modulePath] };
}
