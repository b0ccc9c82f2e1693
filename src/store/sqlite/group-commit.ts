/**
 * Group commit: writes issued in the same turn of the event loop share one SQLite transaction, so a
 * burst of enqueues or attempt ends pays for one commit (and at most one fsync) instead of one each.
 */
import type Database from "better-sqlite3";
import { toStoreError } from "./sqlite-errors.js";

interface PendingWrite {
  apply: () => unknown;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private pending: PendingWrite[] = [];
  private scheduled = false;

  constructor(private readonly db: Database.Database) {}

  /**
   * Runs `apply` inside the next group transaction and resolves with its value once committed.
   * `durable` writes make that commit use `synchronous = FULL` (fsync of the WAL); the others commit at
   * NORMAL, which survives a crash of the process but not of the machine. One FULL commit also makes
   * every earlier NORMAL commit durable, because the fsync covers the whole WAL file.
   */
  write<T>(apply: () => T, durable: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ apply, durable, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything pending now (used before closing). */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const durable = batch.some((write) => write.durable);
    const results: unknown[] = [];
    const failures = new Map<number, unknown>();
    try {
      if (durable) this.db.pragma("synchronous = FULL");
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
    } finally {
      if (durable) this.db.pragma("synchronous = NORMAL");
    }
    batch.forEach((write, index) =>
      failures.has(index) ? write.reject(toStoreError(failures.get(index))) : write.resolve(results[index]),
    );
  }
}
