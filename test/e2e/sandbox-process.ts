/**
 * Watching a sandbox from outside: the identity a test function reports from inside it, and waiting for
 * its processes to end.
 *
 * Under `process` isolation a sandbox is a plain child process of the server: the pid it reports is its
 * pid on the host, and its uid is the server's. Under `strong` isolation the pid it reports is one of its
 * own pid namespace (meaningless on the host), and its uid is its own — never reused while its server
 * lives, but a restarted server may take over its predecessor's block of uids, and the kernel reuses a
 * freed namespace's number at once. So a
 * strong sandbox is its uid in its pid namespace, that namespace recognised by the process that is its
 * pid 1 (bwrap's init, by host pid and start time): every process the sandbox starts lives in it, and it
 * dies with that process.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import type { KilnClient } from "../../src/client/index.js";
import { pollUntil } from "./poll-until.js";

/** Who a sandbox is, as a test function reports it: `ctx.progress(1, JSON.stringify({ pid, uid }))`. */
export interface ReportedIdentity {
  /** `process.pid` inside the sandbox. */
  pid: number;
  /** `process.getuid()` inside the sandbox. */
  uid: number;
}

/** A process on the host, by pid and start time: a pid alone may have been reused. */
export interface ProcessKey {
  pid: number;
  startTime: number;
}

export interface SandboxIdentity extends ReportedIdentity {
  /** The sandbox runs as a uid of its own (strong isolation), not as the server's (process isolation). */
  ownUid: boolean;
  /** The process that reported the identity, as the host sees it (found while it ran). */
  host: ProcessKey;
  /** Strong isolation: its pid namespace (`pid:[4026532181]`) and that namespace's pid 1; else null. */
  namespace: { name: string; init: ProcessKey } | null;
}

/** A process as /proc/<pid>/status and /proc/<pid>/stat show it. */
export interface HostProcess extends ProcessKey {
  ppid: number;
  /** The real uid. */
  uid: number;
  /** `R`, `S`, `Z`, … */
  state: string;
  /** Its pid in the innermost pid namespace it is in (the last `NSpid:` field). */
  innermostPid: number;
  pidNamespace: string | null;
  cmdline: string;
}

/** The uid the server runs as: the tests start it as themselves. */
const serverUid = process.getuid?.() ?? 0;

/** Reads one process; null when there is none (or it ended while being read). */
export async function readHostProcess(pid: number): Promise<HostProcess | null> {
  let status: string;
  let stat: string;
  try {
    status = await readFile(`/proc/${pid}/status`, "utf8");
    stat = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "";
  const nsPids = field("NSpid").split(/\s+/).filter(Boolean).map(Number);
  // The fields after the command name (which may hold spaces and parentheses) start with the state;
  // the start time is field 22 of the whole line.
  const afterName = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return {
    pid,
    startTime: Number(afterName[19]),
    ppid: Number(field("PPid")),
    uid: Number(field("Uid").split(/\s+/)[0]),
    state: field("State").charAt(0),
    innermostPid: nsPids.at(-1) ?? pid,
    pidNamespace: await readlink(`/proc/${pid}/ns/pid`).catch(() => null),
    cmdline: cmdline.replaceAll("\0", " ").trim(),
  };
}

/** The numeric entries of /proc, this process left out. */
async function listPids(): Promise<number[]> {
  return (await readdir("/proc"))
    .filter((entry) => /^[0-9]+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** Every process on the host whose real uid `wanted` accepts (zombies included). */
export async function listProcessesByUid(wanted: (uid: number) => boolean): Promise<HostProcess[]> {
  const found: HostProcess[] = [];
  for (const pid of await listPids()) {
    // A cheap first look at the uid, so only matches pay for the full read.
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const uid = /^Uid:\s*([0-9]+)/m.exec(status)?.[1];
    if (uid === undefined || !wanted(Number(uid))) continue;
    const info = await readHostProcess(pid);
    if (info !== null && wanted(info.uid)) found.push(info);
  }
  return found;
}

/** Every process on the host in the pid namespace `name` (zombies included). */
async function listProcessesInNamespace(name: string): Promise<HostProcess[]> {
  const found: HostProcess[] = [];
  for (const pid of await listPids()) {
    if ((await readlink(`/proc/${pid}/ns/pid`).catch(() => null)) !== name) continue;
    const info = await readHostProcess(pid);
    if (info !== null && info.pidNamespace === name) found.push(info);
  }
  return found;
}

/** The ancestors of a process, nearest first, up to (not including) pid 1 or a process that is gone. */
export async function listAncestors(pid: number): Promise<HostProcess[]> {
  const ancestors: HostProcess[] = [];
  let current = await readHostProcess(pid);
  while (current !== null && current.ppid > 1) {
    const parent = await readHostProcess(current.ppid);
    if (parent === null) break;
    ancestors.push(parent);
    current = parent;
  }
  return ancestors;
}

/** Every process descending from `pid` (children, their children, …), zombies included. */
export async function listDescendants(pid: number): Promise<HostProcess[]> {
  const all = await Promise.all((await listPids()).map((other) => readHostProcess(other)));
  const children = new Map<number, HostProcess[]>();
  for (const p of all) {
    if (p !== null) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  }
  const found: HostProcess[] = [];
  for (let queue = [pid]; queue.length > 0;) {
    const next = children.get(queue.shift() as number) ?? [];
    found.push(...next);
    queue.push(...next.map((child) => child.pid));
  }
  return found;
}

function parseIdentity(message: string | undefined): ReportedIdentity | undefined {
  if (message === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  const { pid, uid } = (value ?? {}) as { pid?: unknown; uid?: unknown };
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return undefined;
  if (typeof uid !== "number" || !Number.isInteger(uid) || uid < 0) return undefined;
  return { pid, uid };
}

/**
 * Waits until the task's progress message holds the `{ pid, uid }` its function reports once it runs,
 * then finds that process on the host: the sandbox must still be running (the functions report first).
 */
export async function waitForSandboxIdentity(
  client: KilnClient,
  taskId: string,
  timeoutMs: number,
): Promise<SandboxIdentity> {
  const reported = await pollUntil(
    `task ${taskId} to report its sandbox's identity`,
    async () => parseIdentity((await client.getTask(taskId)).progress?.message),
    { timeoutMs, intervalMs: 20 },
  );
  const described = `task ${taskId} reported ${JSON.stringify(reported)}`;
  if (reported.uid === serverUid) {
    const self = await readHostProcess(reported.pid);
    if (self === null) throw new Error(`${described}, but there is no such process`);
    return { ...reported, ownUid: false, host: keyOf(self), namespace: null };
  }
  // Another Kiln node on the host may have given the same uid to one of its sandboxes: only one started
  // by this test's server (a descendant of this process) is this one.
  const candidates: HostProcess[] = [];
  for (const p of await listProcessesByUid((uid) => uid === reported.uid)) {
    if (p.innermostPid !== reported.pid || p.pidNamespace === null) continue;
    if ((await listAncestors(p.pid)).some((ancestor) => ancestor.pid === process.pid)) candidates.push(p);
  }
  const [self] = candidates;
  if (self?.pidNamespace == null || candidates.length !== 1) {
    throw new Error(`${described}, but ${candidates.length} of this test's processes match`);
  }
  const init = (await listProcessesInNamespace(self.pidNamespace)).find((p) => p.innermostPid === 1);
  if (init === undefined) throw new Error(`${described}, but ${self.pidNamespace} has no pid 1`);
  return {
    ...reported,
    ownUid: true,
    host: keyOf(self),
    namespace: { name: self.pidNamespace, init: keyOf(init) },
  };
}

function keyOf(p: ProcessKey): ProcessKey {
  return { pid: p.pid, startTime: p.startTime };
}

function isSameProcess(p: ProcessKey, key: ProcessKey): boolean {
  return p.pid === key.pid && p.startTime === key.startTime;
}

/**
 * The processes of the sandbox, zombies included. Process isolation: its own process, if it is still
 * the same one. Strong isolation: the processes of its uid in its pid namespace — unless that namespace
 * now has another pid 1 than the sandbox's, when the name is another sandbox's.
 */
export async function listSandboxProcesses(identity: SandboxIdentity): Promise<HostProcess[]> {
  if (identity.namespace === null) {
    const self = await readHostProcess(identity.host.pid);
    return self !== null && isSameProcess(self, identity.host) ? [self] : [];
  }
  const { name, init } = identity.namespace;
  const inNamespace = await listProcessesInNamespace(name);
  const currentInit = inNamespace.find((p) => p.innermostPid === 1);
  if (currentInit !== undefined && !isSameProcess(currentInit, init)) return [];
  return inNamespace.filter((p) => p.uid === identity.uid);
}

/** True while a process of the sandbox runs (a zombie, dead and waiting to be reaped, does not count). */
export async function isSandboxAlive(identity: SandboxIdentity): Promise<boolean> {
  return (await listSandboxProcesses(identity)).some((p) => p.state !== "Z");
}

/**
 * Resolves with the milliseconds until no process of the sandbox is left, zombies included (its parent
 * must have reaped it); rejects after `timeoutMs`, naming what is left.
 */
export async function waitForSandboxGone(identity: SandboxIdentity, timeoutMs: number): Promise<number> {
  const startedMs = Date.now();
  let left: HostProcess[] = [];
  try {
    await pollUntil(
      `sandbox ${describeSandbox(identity)} to be gone`,
      async () => {
        left = await listSandboxProcesses(identity);
        return left.length === 0 ? true : undefined;
      },
      { timeoutMs, intervalMs: 20 },
    );
  } catch (error) {
    const still = left.map((p) => `${p.pid} (${p.state}) ${p.cmdline.slice(0, 200)}`).join("; ");
    throw new Error(`${(error as Error).message}; still there: ${still}`);
  }
  return Date.now() - startedMs;
}

/** How a test names the sandbox in its messages. */
export function describeSandbox(identity: SandboxIdentity): string {
  return identity.namespace === null
    ? `pid ${identity.pid}`
    : `uid ${identity.uid} (host pid ${identity.host.pid} in ${identity.namespace.name})`;
}
