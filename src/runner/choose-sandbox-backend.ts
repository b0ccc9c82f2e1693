/**
 * Capability detection at start: the strongest isolation this host offers (or the one asked for), with
 * the reason in words for the operator.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { BwrapSandboxBackend } from "./bwrap-sandbox-backend.js";
import { detectCgroupDriver } from "./cgroup/detect-cgroup-driver.js";
import { ProcessSandboxBackend } from "./process-sandbox-backend.js";
import type { SandboxBackend } from "./sandbox-backend.js";
import { buildSeccompFilter, seccompUnsupportedReason } from "./seccomp-filter.js";
import { defaultUidRange, UidAllocator } from "./uid-allocator.js";

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
  const unsupported = seccompUnsupportedReason();
  if (unsupported !== null) return { missing: unsupported };
  for (const tool of ["/usr/bin/bwrap", "/usr/bin/setpriv"]) {
    try {
      await run(tool, ["--version"], { timeout: 5000 });
    } catch {
      return { missing: `${tool} is not installed (apt-get install bubblewrap util-linux)` };
    }
  }
  const seccompFilter = buildSeccompFilter();
  const probe = await probeBwrap(seccompFilter);
  if (probe !== null) return { missing: `bubblewrap cannot create namespaces or apply seccomp: ${probe}` };
  const { driver, reason } = await detectCgroupDriver();
  if (driver === null) return { missing: `no usable cgroups: ${reason}` };
  const backend = new BwrapSandboxBackend({
    cgroups: driver,
    uids: new UidAllocator(defaultUidRange),
    seccompFilter,
    ...limits,
  });
  return { backend, reason: `bubblewrap namespaces, a uid and a cgroup ${driver.version} per sandbox` };
}

/** Runs `true` the way a sandbox runs (namespaces and the seccomp filter); null when it worked, else why not. */
function probeBwrap(seccompFilter: Buffer): Promise<string | null> {
  // prettier-ignore
  const args = [
    "--unshare-pid", "--unshare-net", "--seccomp", "3",
    "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--proc", "/proc", "--dev", "/dev", "--", "/usr/bin/true",
  ];
  // Some container runtimes forbid namespaces; old kernels lack seccomp.
  const child = spawn("/usr/bin/bwrap", args, { stdio: ["ignore", "ignore", "pipe", "pipe"], timeout: 5000 });
  const filterPipe = child.stdio[3] as NodeJS.WritableStream;
  filterPipe.on("error", () => {});
  filterPipe.end(seccompFilter);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(0, 1000)));
  return new Promise((resolve) => {
    child.on("error", (error) => resolve(error.message));
    child.on("close", (code, signal) =>
      resolve(code === 0 ? null : stderr.split("\n")[0] || `bwrap exited with ${signal ?? code}`),
    );
  });
}
