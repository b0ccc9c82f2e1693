/**
 * Picks the cgroup driver this host supports, and proves it by creating, killing and removing a probe
 * cgroup. Kiln's cgroups live under a `kiln` cgroup below the server's own (from /proc/self/cgroup), so the
 * host's accounting of the server stays intact.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Cgroup, CgroupDriver } from "./cgroup-driver.js";
import { errorCode, kernelCgroupFs, readProcs, type CgroupFs } from "./cgroup-fs.js";
import { CgroupV1Driver, type CgroupV1ParentDirs } from "./cgroup-v1-driver.js";
import { CgroupV2Driver } from "./cgroup-v2-driver.js";

export interface DetectCgroupDriverOptions {
  /** Where the cgroup filesystems are mounted. Default `/sys/fs/cgroup`. */
  cgroupRoot?: string;
  /** The file that lists this process's cgroups. Default `/proc/self/cgroup`. */
  procSelfCgroupPath?: string;
  /** Name of Kiln's parent cgroup below the server's own. Default `kiln`. */
  parentName?: string;
  /**
   * cgroup v2 only: a cgroup that holds processes cannot hand controllers to its children ("no internal
   * processes"). When the server's own cgroup does (a systemd service with `Delegate=yes`, a container's
   * namespace root), move its processes into the leaf `<own>/kiln-server` first. Default true. Only do this
   * in a cgroup delegated to Kiln: in a login session's scope it would move the operator's shell too.
   */
  moveProcessesToLeaf?: boolean;
  /** Passed to the driver. Default 2000 ms. */
  killTimeoutMs?: number;
  /** Default: the real cgroup filesystems. */
  fs?: CgroupFs;
  /** The server's uid, for the reason text. Default `process.getuid()`. */
  uid?: number;
}

export interface CgroupDriverDetection {
  /** null: no usable cgroups, so no memory/pids limits or reliable kill switch on this host. */
  driver: CgroupDriver | null;
  /** Why, in a sentence for the operator: what was found, or what is missing. */
  reason: string;
}

const serverLeafName = "kiln-server";
const probeLimits = { memoryBytes: 64 * 1024 * 1024, pidsMax: 8 };

/** Finds and proves the strongest cgroup driver this host offers. Never throws: failures become a reason. */
export async function detectCgroupDriver(
  options: DetectCgroupDriverOptions = {},
): Promise<CgroupDriverDetection> {
  const fs = options.fs ?? kernelCgroupFs;
  const root = options.cgroupRoot ?? "/sys/fs/cgroup";
  const procSelfCgroupPath = options.procSelfCgroupPath ?? "/proc/self/cgroup";
  let own: OwnCgroups;
  try {
    own = parseProcSelfCgroup(await fs.readText(procSelfCgroupPath));
  } catch (error) {
    return { driver: null, reason: `cannot read ${procSelfCgroupPath}: ${messageOf(error)}` };
  }
  const context: DetectionContext = {
    fs,
    root,
    own,
    parentName: options.parentName ?? "kiln",
    killTimeoutMs: options.killTimeoutMs ?? 2000,
    uid: options.uid ?? process.getuid?.(),
  };
  try {
    // Pure cgroup2: the mount point itself is the v2 root. Hybrid hosts mount v2 at <root>/unified.
    if (await fs.exists(join(root, "cgroup.controllers"))) {
      return await detectV2(context, options.moveProcessesToLeaf ?? true);
    }
    if (await fs.exists(root)) return await detectV1(context);
    return { driver: null, reason: `no cgroup filesystem at ${root}` };
  } catch (error) {
    return { driver: null, reason: `cgroup detection failed: ${messageOf(error)}` };
  }
}

/** This process's cgroup per v1 controller, and its cgroup2 path (the `0::` line). */
interface OwnCgroups {
  v1: Map<string, string>;
  unified: string | undefined;
}

interface DetectionContext {
  fs: CgroupFs;
  root: string;
  own: OwnCgroups;
  parentName: string;
  killTimeoutMs: number;
  uid: number | undefined;
}

/** Parses lines of `hierarchy-id:controller,list:/path` (a v2 line is `0::/path`). */
function parseProcSelfCgroup(text: string): OwnCgroups {
  const own: OwnCgroups = { v1: new Map(), unified: undefined };
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, id, controllers = "", path = "/"] = match;
    if (id === "0" && controllers === "") own.unified = path;
    else for (const controller of controllers.split(",")) if (controller !== "") own.v1.set(controller, path);
  }
  return own;
}

async function detectV2(
  context: DetectionContext,
  moveProcessesToLeaf: boolean,
): Promise<CgroupDriverDetection> {
  const { fs, root, own } = context;
  if (own.unified === undefined) {
    return {
      driver: null,
      reason: `cgroup v2 at ${root}, but this process has no cgroup2 entry in /proc/self/cgroup`,
    };
  }
  const ownDir = join(root, own.unified);
  const available = (await fs.readText(join(ownDir, "cgroup.controllers"))).split(/\s+/);
  for (const controller of ["memory", "pids"]) {
    if (!available.includes(controller)) {
      return {
        driver: null,
        reason: `cgroup v2: no ${controller} controller in ${ownDir} (cgroup.controllers: ${available.join(" ").trim() || "none"}); delegate it, e.g. systemd Delegate=yes`,
      };
    }
  }
  const wanted = ["memory", "pids", "cpu"].filter((controller) => available.includes(controller));
  const delegated = await delegateControllers(context, ownDir, wanted, moveProcessesToLeaf);
  if (delegated.problem !== undefined) return { driver: null, reason: delegated.problem };
  const parentDir = join(ownDir, context.parentName);
  const driver = new CgroupV2Driver({ parentDir, fs, killTimeoutMs: context.killTimeoutMs });
  const probe = await probeDriver(context, driver, wanted.includes("cpu"), async (name) => {
    if (!(await fs.exists(join(parentDir, name, "cgroup.kill"))))
      return "the kernel has no cgroup.kill (Linux < 5.14)";
    return undefined;
  });
  if (probe !== undefined) return { driver: null, reason: `cgroup v2 at ${parentDir}: ${probe}` };
  const cpuNote = wanted.includes("cpu") ? "" : "; no cpu controller, so CPU limits are rejected";
  return {
    driver,
    reason: `cgroup v2: sandboxes under ${parentDir} (${wanted.join(", ")}; kill via cgroup.kill)${delegated.note ?? ""}${cpuNote}`,
  };
}

/**
 * Lists the controllers in the server's own `cgroup.subtree_control`, so Kiln's parent cgroup gets them.
 * The kernel refuses (EBUSY) while that cgroup holds processes, unless it is the root.
 */
async function delegateControllers(
  context: DetectionContext,
  ownDir: string,
  wanted: string[],
  moveProcessesToLeaf: boolean,
): Promise<{ problem?: string; note?: string }> {
  const { fs } = context;
  const subtreePath = join(ownDir, "cgroup.subtree_control");
  const enabled = (await fs.readText(subtreePath)).split(/\s+/);
  if (wanted.every((controller) => enabled.includes(controller))) return { note: "" };
  const request = wanted.map((controller) => `+${controller}`).join(" ");
  let moved = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeText(subtreePath, request);
      return { note: moved > 0 ? `; moved ${moved} process(es) of ${ownDir} into ${serverLeafName}` : "" };
    } catch (error) {
      if (errorCode(error) !== "EBUSY") {
        return {
          problem: `cgroup v2: cannot enable ${request} in ${subtreePath}: ${messageOf(error)}${notRoot(context)}`,
        };
      }
      if (!moveProcessesToLeaf) {
        return {
          problem: `cgroup v2: ${ownDir} holds processes, so it cannot hand controllers to Kiln's cgroups (moveProcessesToLeaf is off)`,
        };
      }
    }
    moved += await moveProcessesIntoLeaf(fs, ownDir);
  }
  return {
    problem: `cgroup v2: ${ownDir} kept gaining processes while Kiln moved them into ${serverLeafName}`,
  };
}

/** Moves every process of `ownDir` into `<ownDir>/kiln-server`. Returns how many moved. */
async function moveProcessesIntoLeaf(fs: CgroupFs, ownDir: string): Promise<number> {
  const leafDir = join(ownDir, serverLeafName);
  try {
    await fs.makeDir(leafDir);
  } catch (error) {
    if (errorCode(error) !== "EEXIST") throw error;
  }
  let moved = 0;
  for (const pid of await readProcs(fs, join(ownDir, "cgroup.procs"))) {
    try {
      await fs.writeText(join(leafDir, "cgroup.procs"), String(pid));
      moved += 1;
    } catch (error) {
      if (errorCode(error) !== "ESRCH") throw error; // exited meanwhile
    }
  }
  return moved;
}

async function detectV1(context: DetectionContext): Promise<CgroupDriverDetection> {
  const { fs, root, own, parentName } = context;
  // Each v1 controller is mounted at <root>/<controller> (systemd links cpu → cpu,cpuacct).
  const parentIn = async (controller: string): Promise<string | undefined> => {
    const ownPath = own.v1.get(controller);
    if (ownPath === undefined || !(await fs.exists(join(root, controller, ownPath)))) return undefined;
    return join(root, controller, ownPath, parentName);
  };
  const memory = await parentIn("memory");
  if (memory === undefined) {
    return {
      driver: null,
      reason: `no memory controller: no cgroup2 at ${root} and no cgroup v1 memory hierarchy`,
    };
  }
  const pids = await parentIn("pids");
  if (pids === undefined)
    return { driver: null, reason: `no pids controller: no cgroup v1 pids hierarchy at ${root}` };
  const parentDirs: CgroupV1ParentDirs = { memory, pids };
  const cpu = await parentIn("cpu");
  if (cpu !== undefined) parentDirs.cpu = cpu;
  const freezer = await parentIn("freezer");
  if (freezer !== undefined) parentDirs.freezer = freezer;
  // Hybrid hosts: the cgroup2 mount has no controllers here but still offers cgroup.kill.
  const unifiedRoot = join(root, "unified");
  const unifiedParentDir =
    own.unified !== undefined && (await fs.exists(join(unifiedRoot, "cgroup.controllers")))
      ? join(unifiedRoot, own.unified, parentName)
      : null;
  if (freezer === undefined && unifiedParentDir === null) {
    return {
      driver: null,
      reason: `no kill switch: neither a cgroup v1 freezer nor a cgroup2 mount at ${root}`,
    };
  }
  const driver = new CgroupV1Driver({
    parentDirs,
    unifiedParentDir,
    fs,
    killTimeoutMs: context.killTimeoutMs,
  });
  const probe = await probeDriver(context, driver, cpu !== undefined);
  if (probe !== undefined) return { driver: null, reason: `cgroup v1 under ${memory}: ${probe}` };
  const controllers = Object.keys(parentDirs).join(", ");
  const killVia =
    (await driver.readKillMethod()) === "cgroup.kill"
      ? `cgroup.kill on the cgroup2 twin under ${unifiedParentDir}`
      : "freezer, then SIGKILL";
  const cpuNote = cpu === undefined ? "; no cpu hierarchy, so CPU limits are rejected" : "";
  return {
    driver,
    reason: `cgroup v1: sandboxes under ${memory} (${controllers}); kill via ${killVia}${cpuNote}`,
  };
}

/**
 * Creates a probe cgroup with real limits, runs the kill switch on it and removes it. Returns a problem
 * sentence, or undefined when all of that worked.
 */
async function probeDriver(
  context: DetectionContext,
  driver: CgroupDriver,
  withCpu: boolean,
  inspect?: (name: string) => Promise<string | undefined>,
): Promise<string | undefined> {
  const name = `kiln-probe-${process.pid}-${randomBytes(3).toString("hex")}`;
  let cgroup: Cgroup;
  try {
    cgroup = await driver.create(name, withCpu ? { ...probeLimits, cpuCores: 1 } : probeLimits);
  } catch (error) {
    return `cannot create a probe cgroup: ${messageOf(error)}${notRoot(context)}`;
  }
  try {
    const problem = await inspect?.(name);
    if (problem !== undefined) return problem;
    await cgroup.killAll();
    return undefined;
  } catch (error) {
    return `the probe cgroup failed: ${messageOf(error)}`;
  } finally {
    await cgroup.remove().catch(() => {}); // best effort: a leftover empty probe cgroup is harmless
  }
}

function notRoot(context: DetectionContext): string {
  return context.uid !== undefined && context.uid !== 0
    ? ` (not root: uid ${context.uid}, and no cgroup subtree delegated to it)`
    : "";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
