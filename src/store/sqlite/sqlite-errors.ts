/** Which SQLite errors mean "the disk refuses writes" rather than "this call is wrong". */
import { StoreWriteRefusedError } from "../store.js";

/** `error` as a `StoreWriteRefusedError` when SQLite reports a full disk or a read-only file, else as is. */
export function toStoreError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return error;
  // SQLITE_FULL is ENOSPC (or EDQUOT) on a write; SQLITE_IOERR_WRITE/_FSYNC can be ENOSPC in the WAL.
  if (code === "SQLITE_FULL" || code === "SQLITE_IOERR_WRITE" || code === "SQLITE_IOERR_FSYNC") {
    return new StoreWriteRefusedError("full", error);
  }
  if (code.startsWith("SQLITE_READONLY")) return new StoreWriteRefusedError("read_only", error);
  return error;
}

/** Runs `write` now, as a promise; a full disk or read-only file rejects as a `StoreWriteRefusedError`. */
export function writeNow<T>(write: () => T): Promise<T> {
  // The executor runs `write` at once; what it throws becomes the rejection.
  return new Promise<T>((resolve) => resolve(write())).catch((error: unknown) => {
    throw toStoreError(error);
  });
}
