/**
 * Sandbox uids for one node: never handed out twice while the node lives, and never the same as another
 * node's on the host. A node claims a block of uids host-wide (a file in a directory all nodes share,
 * naming the claiming process), hands its uids out in order, and claims a further block when one is used
 * up. A block whose owner process has ended is taken over.
 */
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface UidAllocatorOptions {
  /** The directory of block claims, shared by every node on the host. */
  dir: string;
  firstUid: number;
  blockSize: number;
  blockCount: number;
}

/**
 * 0x70000000 up to just below 0x7FFE0000: far above regular users (1000–60000), systemd's dynamic users
 * (61184–65519), `nobody`, the subordinate ranges of rootless containers (100000 on) and systemd-nspawn's
 * (up to 0x6FFFFFFF), and below systemd's foreign range and 2^31, which some tools read as negative.
 */
export const defaultUidRange = {
  dir: "/run/kiln/sandbox-uids",
  firstUid: 0x7000_0000,
  blockSize: 65_536,
  blockCount: 4094,
} as const satisfies UidAllocatorOptions;

/** A process as `pid starttime`: a pid alone may have been reused by the time someone reads it. */
function processIdentity(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name in parentheses may hold spaces: fields are counted after its closing one.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const startTime = fields[19];
    return startTime === undefined ? null : `${pid} ${startTime}`;
  } catch {
    return null;
  }
}

function isAlive(owner: string): boolean {
  const pid = Number(owner.split(" ")[0]);
  return Number.isSafeInteger(pid) && pid > 0 && processIdentity(pid) === owner.trim();
}

export class UidAllocator {
  private readonly owner: string;
  private next = 0;
  private end = 0;

  constructor(private readonly options: UidAllocatorOptions) {
    const owner = processIdentity(process.pid);
    if (owner === null) throw new Error("cannot read /proc/self/stat to claim sandbox uids");
    this.owner = owner;
  }

  /** The next uid, one never handed out before by this node nor held by another node on the host. */
  allocate(): number {
    if (this.next === this.end) {
      const block = this.claimBlock();
      this.next = this.options.firstUid + block * this.options.blockSize;
      this.end = this.next + this.options.blockSize;
    }
    const uid = this.next;
    this.next += 1;
    return uid;
  }

  /**
   * A claim of block `b` is the file `block-b.g` of the highest generation `g`. A dead owner's block is
   * taken over by creating generation g+1 with `link()`, which fails if it exists: of nodes racing for
   * it, one wins. Links are made from a file already written, so no one reads a half-written claim.
   */
  private claimBlock(): number {
    const { dir, blockCount } = this.options;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const draft = path.join(dir, `.draft-${process.pid}-${randomBytes(6).toString("hex")}`);
    writeFileSync(draft, `${this.owner}\n`, { mode: 0o644 });
    try {
      const claims = this.readClaims();
      for (let block = 0; block < blockCount; block += 1) {
        const generations = claims.get(block) ?? [];
        const top = generations.at(-1);
        if (top !== undefined && !this.isStale(block, top)) continue;
        const generation = top === undefined ? 0 : top + 1;
        if (this.tryClaim(draft, block, generation)) return block;
      }
    } finally {
      unlinkSync(draft);
    }
    const { firstUid, blockSize } = this.options;
    throw new Error(
      `every block of sandbox uids (${firstUid} to ${firstUid + blockCount * blockSize - 1}) is in use ` +
        `by a running node or was used by this one`,
    );
  }

  private tryClaim(draft: string, block: number, generation: number): boolean {
    const claim = this.claimPath(block, generation);
    try {
      linkSync(draft, claim);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
    // Our listing may have been old: a newer generation means someone else holds the block now.
    const generations = this.readClaims().get(block) ?? [];
    if (generations.some((other) => other > generation)) {
      unlinkSync(claim);
      return false;
    }
    for (const older of generations.filter((other) => other < generation)) {
      try {
        unlinkSync(this.claimPath(block, older));
      } catch {
        // another node cleaning up the same block
      }
    }
    return true;
  }

  /** Held by a process that has ended; a claim that changed while read is not stale. */
  private isStale(block: number, generation: number): boolean {
    let owner: string;
    try {
      owner = readFileSync(this.claimPath(block, generation), "utf8");
    } catch {
      return false;
    }
    return owner.trim() !== this.owner && !isAlive(owner);
  }

  /** block → its claims' generations, ascending. */
  private readClaims(): Map<number, number[]> {
    const claims = new Map<number, number[]>();
    for (const name of readdirSync(this.options.dir)) {
      const match = /^block-(\d+)\.(\d+)$/.exec(name);
      if (match === null) continue;
      const block = Number(match[1]);
      claims.set(block, [...(claims.get(block) ?? []), Number(match[2])]);
    }
    for (const generations of claims.values()) generations.sort((a, b) => a - b);
    return claims;
  }

  private claimPath(block: number, generation: number): string {
    return path.join(this.options.dir, `block-${block}.${generation}`);
  }
}
