/**
 * One node per data directory. Two nodes on one directory would share its SQLite database, its
 * sandbox folders and its node id, and each would take the other's running tasks for its own.
 *
 * The lock is an exclusive SQLite lock on `node.lock`: an fcntl lock the kernel drops when the
 * process dies, so a node killed with `kill -9` never blocks the next start. Beside it, `node.pid`
 * names the holder for the message a refused node prints.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import Database from "better-sqlite3";

export class DataDirInUseError extends Error {
  /** What `kiln serve` prints before the message. */
  readonly code = "DATA_DIR_IN_USE";

  constructor(
    readonly dataDir: string,
    readonly holderPid: number | null,
  ) {
    super(
      `the data directory ${dataDir} is in use by another Kiln node` +
        (holderPid === null ? "" : ` (pid ${holderPid})`) +
        ": stop that node first, or give this one its own --data-dir",
    );
    this.name = "DataDirInUseError";
  }
}

export class DataDirLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly pidFile: string,
  ) {}

  /** Takes the directory's lock, or throws `DataDirInUseError` naming the node that holds it. */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    const pidFile = path.join(dataDir, "node.pid");
    // timeout 0: a held lock is an answer, not something to wait for.
    const db = new Database(path.join(dataDir, "node.lock"), { timeout: 0 });
    try {
      // In the default (rollback) journal mode, BEGIN EXCLUSIVE takes the exclusive lock at once; the
      // transaction stays open for the node's life, so the lock does too.
      db.exec("BEGIN EXCLUSIVE");
    } catch (error) {
      db.close();
      if ((error as { code?: unknown }).code !== "SQLITE_BUSY") throw error;
      throw new DataDirInUseError(dataDir, await readHolderPid(pidFile));
    }
    await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 });
    return new DataDirLock(db, pidFile);
  }

  async release(): Promise<void> {
    if (!this.db.open) return;
    await rm(this.pidFile, { force: true });
    this.db.exec("ROLLBACK");
    this.db.close();
  }
}

async function readHolderPid(pidFile: string): Promise<number | null> {
  const text = await readFile(pidFile, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}
