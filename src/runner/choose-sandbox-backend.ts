/**
 * Capability detection at start: the strongest isolation this host offers (or the one asked for), with
 * the reason in words for the operator.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { BwrapSandboxBackend } from "./bwrap-sandbox-backend.js";
import { detectCgroupDriver } from "./cgroup/detect-cgroup-driver.js";
import { ProcessSandboxBackend } from "./process-sandbox-backend.js";
import type { SandboxBackend } from "./sandbox-backend.js";

export type IsolationWanted = "auto" | "strong" | "process";

export interface SandboxLimits {
  tmpSizeMb: number;
  pidsMax: number;
  cpuCores: number;
  maxPayloadBytes: number;
}

export interface BackendChoice {
  backend: SandboxBackend;
  /** Why this level: what was found, or what is missing for `strong`. */
  reason: string;
}

const run = promisify(execFile);

/** Picks the backend; throws when `strong` is asked for and the host cannot give it. */
export async function chooseSandboxBackend(
  wanted: IsolationWanted,
  limits: SandboxLimits,
): Promise<BackendChoice> {
  if (wanted === "process") return { backend: new ProcessSandboxBackend(), reason: "asked for" };
  const strong = await detectStrong(limits);
  if ("backend" in strong) return strong;
  if (wanted === "strong")
    throw new Error(`strong isolation is not available on this host: ${strong.missing}`);
  return { backend: new ProcessSandboxBackend(), reason: `strong isolation unavailable: ${strong.missing}` };
}

async function detectStrong(limits: SandboxLimits): Promise<BackendChoice | { missing: string }> {
  if (process.getuid?.() !== 0)
    return { missing: "the server does not run as root (needed to give each sandbox a uid)" };
  for (const tool of ["/usr/bin/bwrap", "/usr/bin/setpriv"]) {
    try {
      await run(tool, ["--version"], { timeout: 5000 });
    } catch {
      return { missing: `${tool} is not installed (apt-get install bubblewrap util-linux)` };
    }
  }
  try {
    // The namespaces must really open here (some container runtimes forbid them).
    await run(
      "/usr/bin/bwrap",
      [
        "--unshare-pid",
        "--unshare-net",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/usr/bin/true",
      ],
      { timeout: 5000 },
    );
  } catch (error) {
    return { missing: `bubblewrap cannot create namespaces: ${(error as Error).message.split("\n")[0]}` };
  }
  const { driver, reason } = await detectCgroupDriver();
  if (driver === null) return { missing: `no usable cgroups: ${reason}` };
  const backend = new BwrapSandboxBackend({ cgroups: driver, firstUid: 20_000, uidCount: 10_000, ...limits });
  return { backend, reason: `bubblewrap namespaces, a uid and a cgroup ${driver.version} per sandbox` };
}
