/**
 * Group commit: writes issued in the same turn of the event loop share one SQLite transaction, so a
 * burst of enqueues or attempt ends pays for one commit (and at most one fsync) instead of one each.
 *
 * Every commit is made at `synchronous = NORMAL`: its pages are in the WAL file when it returns, which
 * survives a crash of the process but not of the machine. A durable write resolves only once the WAL
 * file has been flushed to disk after its commit: an `fdatasync` on libuv's thread pool, shared by the
 * durable writes of every commit made before it began. So an fsync (~0.2–1 ms here) never stalls the
 * event loop, and what a commit claimed can start before the commit is durable (`onCommitted`).
 */
import type Database from "better-sqlite3";
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import { toStoreError } from "./sqlite-errors.js";

interface PendingWrite {
  apply: () => unknown;
  durable: boolean;
  onCommitted: ((value: unknown) => void) | undefined;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface DurableWaiter {
  value: unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private pending: PendingWrite[] = [];
  private scheduled = false;
  /** Durable writes committed since the running flush of the WAL began: the next flush covers them. */
  private unsynced: DurableWaiter[] = [];
  private syncing = false;
  private closed = false;
  private walFd: number | null = null;

  /** `walPath`: the database's WAL file (null for an in-memory database, which nothing makes durable). */
  constructor(
    private readonly db: Database.Database,
    private readonly walPath: string | null,
  ) {}

  /**
   * Runs `apply` inside the next group transaction and resolves with its value once committed, and, for
   * a `durable` write, once that commit is on disk. `onCommitted` hears the value as soon as the commit
   * returns, before it is durable.
   */
  write<T>(apply: () => T, durable: boolean, onCommitted?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        apply,
        durable,
        onCommitted: onCommitted as PendingWrite["onCommitted"],
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything pending now. */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const results: unknown[] = [];
    const failures = new Map<number, unknown>();
    try {
      this.db.transaction(() => {
        batch.forEach((write, index) => {
          // A failing write rolls back alone (savepoint), so it cannot take its neighbours down with it.
          try {
            results[index] = this.db.transaction(write.apply)();
          } catch (error) {
            failures.set(index, error);
          }
        });
      })();
    } catch (error) {
      // The whole group rolled back (a full disk, say): nothing of it was written.
      batch.forEach((write) => write.reject(toStoreError(error)));
      return;
    }
    batch.forEach((write, index) => {
      if (failures.has(index)) return write.reject(toStoreError(failures.get(index)));
      const value = results[index];
      write.onCommitted?.(value);
      if (!write.durable || this.walPath === null) return write.resolve(value);
      this.unsynced.push({ value, resolve: write.resolve, reject: write.reject });
    });
    this.syncWal();
  }

  /** Commits what is pending and flushes the WAL before the database closes. */
  close(): void {
    this.flush();
    this.closed = true;
    const waiters = this.takeUnsynced();
    try {
      if (waiters.length > 0) fdatasyncSync(this.openWal());
      waiters.forEach((waiter) => waiter.resolve(waiter.value));
    } catch (error) {
      waiters.forEach((waiter) => waiter.reject(toStoreError(error)));
    }
    // A flush on the thread pool still uses the file: it closes it when it is done.
    if (!this.syncing) this.closeWal();
  }

  /** One `fdatasync` at a time; the durable writes committed meanwhile wait for the next one. */
  private syncWal(): void {
    if (this.syncing || this.unsynced.length === 0) return;
    const waiters = this.takeUnsynced();
    let fd: number;
    try {
      fd = this.openWal();
    } catch (error) {
      waiters.forEach((waiter) => waiter.reject(toStoreError(error)));
      return;
    }
    this.syncing = true;
    fdatasync(fd, (error) => {
      this.syncing = false;
      if (error === null) waiters.forEach((waiter) => waiter.resolve(waiter.value));
      else waiters.forEach((waiter) => waiter.reject(toStoreError(error)));
      if (this.closed) this.closeWal();
      else this.syncWal();
    });
  }

  private closeWal(): void {
    if (this.walFd !== null) closeSync(this.walFd);
    this.walFd = null;
  }

  private takeUnsynced(): DurableWaiter[] {
    const waiters = this.unsynced;
    this.unsynced = [];
    return waiters;
  }

  /** The WAL file stays while the connection is open (a checkpoint truncates it, never replaces it). */
  private openWal(): number {
    this.walFd ??= openSync(this.walPath as string, "r");
    return this.walFd;
  }
}
