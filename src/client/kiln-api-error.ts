/** The error every client call throws: the API's `{ error: { code, message, details } }`, typed. */

/**
 * A failed API call. `code` is a stable code from the server's catalog (docs/errors.md, e.g.
 * `FUNCTION_NOT_FOUND`), or one of the client's own:
 * - `NETWORK_ERROR`: the server could not be reached or did not answer in time (`status` 0);
 * - `UNEXPECTED_RESPONSE`: the server answered something that is not the API's JSON.
 *
 * @example
 * try {
 *   await kiln.getTask(id);
 * } catch (error) {
 *   if (error instanceof KilnApiError && error.code === "TASK_NOT_FOUND") return null;
 *   throw error;
 * }
 */
export class KilnApiError extends Error {
  readonly code: string;
  /** The HTTP status, or 0 when no answer arrived. */
  readonly status: number;
  /** Whatever the server added to explain the error (e.g. validation failures); null when nothing. */
  readonly details: unknown;
  /**
   * Seconds the server asked the caller to wait before trying again (its `Retry-After` header, e.g. on
   * `TOO_MANY_REQUESTS`); null when it did not say.
   */
  readonly retryAfterS: number | null;

  constructor(
    code: string,
    message: string,
    options: { status?: number; details?: unknown; retryAfterS?: number | null; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "KilnApiError";
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? null;
    this.retryAfterS = options.retryAfterS ?? null;
  }

  /** Builds the error from a non-2xx answer: its status, its body as text and its headers. */
  static fromResponse(status: number, bodyText: string, headers?: Headers): KilnApiError {
    const retryAfterS = parseRetryAfter(headers?.get("retry-after") ?? null);
    const body = parseJson(bodyText);
    const error = isRecord(body) ? body.error : undefined;
    if (isRecord(error) && typeof error.code === "string" && typeof error.message === "string") {
      return new KilnApiError(error.code, error.message, { status, details: error.details, retryAfterS });
    }
    return new KilnApiError("UNEXPECTED_RESPONSE", `HTTP ${status}: ${summarize(bodyText)}`, {
      status,
      details: { body: bodyText.slice(0, maxBodyChars) },
      retryAfterS,
    });
  }
}

/** `Retry-After` is whole seconds or an HTTP date (RFC 9110 §10.2.3); either becomes seconds from now. */
function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const dateMs = Date.parse(text);
  return Number.isNaN(dateMs) ? null : Math.max(0, Math.ceil((dateMs - nowMs) / 1000));
}

const maxBodyChars = 2000;

function summarize(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  if (oneLine === "") return "(empty body)";
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
