/** Which `pg` errors mean "the database is not reachable right now" rather than "this call is wrong". */
import { StoreUnavailableError } from "../store.js";

/**
 * SQLSTATEs of a server that is shutting down, starting up, out of connections, or too slow for the
 * statement timeout (57014: the store's own connections never cancel a statement otherwise).
 */
const unavailableStates = new Set(["57P01", "57P02", "57P03", "53300", "57014"]);
/** Socket errors on the way to the server. */
const socketErrors = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    return code.startsWith("08") || unavailableStates.has(code) || socketErrors.has(code);
  }
  // The pool and client report a connection lost mid-query without a code.
  return /Connection terminated|connection timeout|Client has encountered a connection error|Query read timeout/i.test(
    error.message,
  );
}

/** Rethrows `error`, as a `StoreUnavailableError` when the database could not be reached. */
export function rethrowUnavailable(error: unknown): never {
  throw isUnavailable(error) ? new StoreUnavailableError(error) : error;
}
