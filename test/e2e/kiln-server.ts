/**
 * A real Kiln server for end-to-end tests: `kiln serve` as a child process on 127.0.0.1, port 0, with a
 * fresh temporary data directory. `stop()` ends it, kills any process still using its data directory or
 * running as a sandbox uid it gave out, and removes the directory; a graceful stop that leaves a sandbox
 * process behind throws (a leak).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createClient, type KilnClient } from "../../src/client/index.js";
import { defaultUidRange } from "../../src/runner/uid-allocator.js";
import { listProcessesByUid, type HostProcess } from "./sandbox-process.js";

/** The repository root, found from this file whether it runs compiled (dist/test/e2e) or not. */
export const repoRoot = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The compiled `kiln` command. */
export const kilnBin = path.join(repoRoot, "dist", "src", "cli", "kiln.js");

export interface KilnServerOptions {
  /** Pass `--examples`: deploy the functions under examples/ at start. */
  examples?: boolean;
  /** `--max-workers`; the server's default (16) when unset. */
  maxWorkers?: number;
  /** More `kiln serve` arguments. */
  args?: string[];
  /** More environment variables for the server. */
  env?: Record<string, string>;
  /** An existing directory to use as the data directory (the test removes it); a fresh temporary one when unset. */
  dataDir?: string;
}

/** A process on this machine, as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  cmdline: string;
  cwd: string;
}

const startTimeoutMs = 30_000;
const stopTimeoutMs = 20_000;
const maxLogChars = 64 * 1024;
/**
 * How long a stop waits for processes to end before it calls them leftovers: bwrap runs with
 * `--die-with-parent`, so a strong sandbox may take a few ms to die after its server has exited.
 */
const leftoverGraceMs = 2_000;

/** The uids strong isolation gives its sandboxes. */
export function isSandboxUid(uid: number): boolean {
  const { firstUid, blockSize, blockCount } = defaultUidRange;
  return uid >= firstUid && uid < firstUid + blockSize * blockCount;
}

function processKey(p: HostProcess): string {
  return `${p.pid}@${p.startTime}`;
}

export class KilnServer {
  url = "";
  token = "";
  pid = 0;
  client: KilnClient = createClient({ url: "http://127.0.0.1:1" });
  /** The tail of the server's stderr, for failure messages. */
  log = "";
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private removed = false;
  /** Every pid this server has had (a restart changes it). */
  private readonly serverPids: number[] = [];
  /** Processes of sandbox uids that were there before the server first started: not its own. */
  private sandboxUidProcessesBefore = new Set<string>();

  private constructor(
    readonly dataDir: string,
    private readonly options: KilnServerOptions,
  ) {}

  /** Starts a server on a new temporary data directory. */
  static async start(options: KilnServerOptions = {}): Promise<KilnServer> {
    const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), "kiln-e2e-")));
    const server = new KilnServer(dataDir, options);
    try {
      server.sandboxUidProcessesBefore = new Set((await listProcessesByUid(isSandboxUid)).map(processKey));
      await server.spawnServer();
    } catch (error) {
      await server.stop().catch(() => {});
      throw error;
    }
    return server;
  }

  /** True while the server process runs. */
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * `kill -9` of the server process, and of nothing else: under process isolation its sandboxes, in their
   * own process groups, live on; under strong isolation the kernel ends them with it (bwrap runs with
   * `--die-with-parent`).
   */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** Sends the server process a signal (SIGTERM, SIGINT) and returns at once. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Resolves once the server process has exited; rejects if it still runs after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the server still runs after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.exited, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts the server again on the same data directory (stopping it first if it still runs). */
  async restart(): Promise<void> {
    await this.terminate();
    await this.spawnServer();
  }

  /**
   * Stops the server (SIGTERM, then SIGKILL if it does not exit in time), kills whatever still uses its
   * data directory and removes it. Throws if a graceful stop left processes behind. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.removed) return;
    const wasRunning = this.running;
    await this.terminate();
    let leftovers = await this.listLeftovers();
    for (const deadline = Date.now() + leftoverGraceMs; leftovers.length > 0 && Date.now() < deadline;) {
      await sleep(20);
      leftovers = await this.listLeftovers();
    }
    for (const leftover of leftovers) {
      try {
        process.kill(leftover.pid, "SIGKILL");
      } catch {
        // it ended on its own meanwhile
      }
    }
    this.removed = true;
    if (this.options.dataDir === undefined)
      await rm(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
    if (wasRunning && leftovers.length > 0) {
      throw new Error(
        `the server stopped but left processes behind: ${leftovers.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`,
      );
    }
  }

  /**
   * Processes using the data directory, and processes of sandbox uids that appeared since the server
   * first started (under strong isolation a sandbox's own processes show neither the directory in their
   * command line nor a working directory in it) — but not those another Kiln node on the host runs in
   * its own cgroups (which it names after its pid), and not zombies.
   */
  private async listLeftovers(): Promise<{ pid: number; cmdline: string }[]> {
    const leftovers: { pid: number; cmdline: string }[] = await listProcessesUsing(this.dataDir);
    for (const p of await listProcessesByUid(isSandboxUid)) {
      if (p.state === "Z" || this.sandboxUidProcessesBefore.has(processKey(p))) continue;
      if (leftovers.some((other) => other.pid === p.pid)) continue;
      const nodePid = await readCgroupNodePid(p.pid);
      if (nodePid !== null && !this.serverPids.includes(nodePid)) continue;
      leftovers.push({ pid: p.pid, cmdline: `(uid ${p.uid}) ${p.cmdline}` });
    }
    return leftovers;
  }

  private async terminate(): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGTERM");
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), stopTimeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  private async spawnServer(): Promise<void> {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("KILN_")));
    const args = [kilnBin, "serve", "--data-dir", this.dataDir, "--port", "0", "--json"];
    if (this.options.examples) args.push("--examples");
    if (this.options.maxWorkers !== undefined) args.push("--max-workers", String(this.options.maxWorkers));
    args.push(...(this.options.args ?? []));
    // No grace by default: a test's stop hands running tasks back at once instead of waiting for them.
    env.KILN_SHUTDOWN_GRACE_S = "0";
    Object.assign(env, this.options.env);
    const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    if (child.pid !== undefined) this.serverPids.push(child.pid);
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      this.log = (this.log + chunk).slice(-maxLogChars);
    });
    const announced = await readAnnouncement(child, () => this.log);
    this.pid = child.pid as number;
    this.url = announced.url;
    this.token = (await readFile(path.join(this.dataDir, "admin-token"), "utf8")).trim();
    this.client = createClient({ url: this.url, token: this.token });
  }
}

/** Starts a server on a new temporary data directory; see `KilnServer`. */
export function startKilnServer(options: KilnServerOptions = {}): Promise<KilnServer> {
  return KilnServer.start(options);
}

/** Resolves with the JSON `kiln serve --json` prints once it listens; rejects if it exits first. */
function readAnnouncement(child: ChildProcess, log: () => string): Promise<{ url: string }> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`kiln serve ${reason}\nstdout: ${stdout}\nstderr: ${log()}`));
    };
    const timer = setTimeout(() => fail(`printed no address within ${startTimeoutMs} ms`), startTimeoutMs);
    const onExit = (code: number | null, signal: string | null) =>
      fail(`exited (code ${code}, signal ${signal}) before it listened`);
    child.once("exit", onExit);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      stdout += chunk;
      let announced: unknown;
      try {
        announced = JSON.parse(stdout);
      } catch {
        return; // not all of it yet
      }
      clearTimeout(timer);
      child.off("exit", onExit);
      const url = (announced as { url?: unknown }).url;
      if (typeof url !== "string") reject(new Error(`kiln serve announced no url: ${stdout}`));
      else resolve({ url });
    });
  });
}

/** Processes (other than this one) whose command line mentions `dir` or whose working directory is in it. */
export async function listProcessesUsing(dir: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const info = await readProcess(pid);
    if (info === null) continue;
    if (info.cmdline.includes(dir) || info.cwd === dir || info.cwd.startsWith(`${dir}/`)) found.push(info);
  }
  return found;
}

/** The process as /proc shows it; null when there is none (a zombie, already dead, counts as none). */
export async function readProcess(pid: number): Promise<ProcessInfo | null> {
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ").trim();
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, …
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state === "Z" || state === "X") return null;
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "");
    return { pid, ppid: Number(ppid), cmdline, cwd };
  } catch {
    return null; // gone meanwhile, or not ours to read
  }
}

/** The pid of the Kiln node whose sandbox cgroup (`kiln-<node pid>-<sandbox>`) holds the process, if any. */
async function readCgroupNodePid(pid: number): Promise<number | null> {
  const cgroups = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
  const match = /\/kiln-([0-9]+)-[^/\n]+$/m.exec(cgroups);
  return match?.[1] === undefined ? null : Number(match[1]);
}

function findRepoRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}
