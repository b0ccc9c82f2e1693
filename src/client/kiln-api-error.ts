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

  constructor(
    code: string,
    message: string,
    options: { status?: number; details?: unknown; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "KilnApiError";
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? null;
  }

  /** Builds the error from a non-2xx answer: its status and its body as text. */
  static fromResponse(status: number, bodyText: string): KilnApiError {
    const body = parseJson(bodyText);
    const error = isRecord(body) ? body.error : undefined;
    if (isRecord(error) && typeof error.code === "string" && typeof error.message === "string") {
      return new KilnApiError(error.code, error.message, { status, details: error.details });
    }
    return new KilnApiError("UNEXPECTED_RESPONSE", `HTTP ${status}: ${summarize(bodyText)}`, {
      status,
      details: { body: bodyText.slice(0, maxBodyChars) },
    });
  }
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
