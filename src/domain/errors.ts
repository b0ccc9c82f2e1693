/**
 * The catalog of stable error codes. Every error the API returns carries one of these codes;
 * `docs/errors.md` lists the same codes (a test keeps the two in step).
 */
export const errorCatalog = {
  BAD_REQUEST: { status: 400, summary: "The request is malformed or fails validation." },
  INVALID_JSON: { status: 400, summary: "The request body is not valid JSON." },
  INVALID_ARCHIVE: { status: 400, summary: "The uploaded function archive cannot be read or is unsafe." },
  INVALID_FUNCTION_CONFIG: { status: 400, summary: "The function's kiln.json or settings are invalid." },
  JSON_TOO_DEEP: {
    status: 400,
    summary: "A JSON body or task payload nests arrays and objects deeper than the node accepts.",
  },
  OVER_PLAN_LIMIT: {
    status: 400,
    summary: "A function's settings or a task's timeout are over a limit of its project's plan.",
  },
  CALLBACK_ADDRESS_NOT_ALLOWED: {
    status: 400,
    summary: "A callback URL points at a loopback, private, link-local or unspecified address.",
  },
  UNAUTHORIZED: { status: 401, summary: "The bearer token is missing or wrong." },
  FORBIDDEN: {
    status: 403,
    summary: "The token is valid but its scope or role does not allow this route.",
  },
  PROJECT_NOT_FOUND: { status: 404, summary: "No project has this name." },
  TOKEN_NOT_FOUND: { status: 404, summary: "No token has this id." },
  PLAN_NOT_FOUND: { status: 404, summary: "No plan has this name." },
  FUNCTION_NOT_FOUND: { status: 404, summary: "No function has this name in the project." },
  REVISION_NOT_FOUND: { status: 404, summary: "The function has no revision with this digest." },
  TASK_NOT_FOUND: { status: 404, summary: "No task has this id in the project." },
  ROUTE_NOT_FOUND: { status: 404, summary: "No API route matches the method and path." },
  PROJECT_EXISTS: { status: 409, summary: "A project with this name exists already." },
  PLAN_EXISTS: { status: 409, summary: "A plan with this name exists already." },
  PLAN_IN_USE: { status: 409, summary: "A plan that projects are on cannot be deleted." },
  PROJECT_HAS_TASKS: {
    status: 409,
    summary: "A project with queued, delayed or running tasks cannot be deleted without cancelling them.",
  },
  TASK_NOT_FINISHED: { status: 409, summary: "Only a finished task can be retried." },
  TASK_ALREADY_FINISHED: { status: 409, summary: "A finished task cannot be cancelled." },
  TOO_MANY_REQUESTS: {
    status: 429,
    summary:
      "No sandbox could take a synchronous invocation within its admission budget; retry after Retry-After.",
  },
  FUNCTION_FAILED: {
    status: 502,
    summary:
      "A synchronous invocation's function failed (error, crash, out of memory, cancel); details say how.",
  },
  FUNCTION_TIMED_OUT: { status: 504, summary: "A synchronous invocation's function ran past its timeout." },
  PAYLOAD_TOO_LARGE: { status: 413, summary: "A task payload is larger than the configured limit." },
  REQUEST_TOO_LARGE: { status: 413, summary: "The request body is larger than the server accepts." },
  ARCHIVE_TOO_LARGE: {
    status: 413,
    summary: "A function archive unpacks to more bytes or entries than the node accepts.",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: "The request body has a content type this route does not take.",
  },
  STORE_UNAVAILABLE: {
    status: 503,
    summary:
      "The node cannot reach its database right now (restarting, connection lost); retry after Retry-After.",
  },
  STORAGE_FULL: {
    status: 503,
    summary: "The disk holding the node's data is full: nothing was written; retry once space is freed.",
  },
  STORE_READ_ONLY: {
    status: 503,
    summary: "The node's data directory is read-only: nothing was written; retry once it is writable.",
  },
  INTERNAL: { status: 500, summary: "An unexpected server error; the server log has the details." },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof errorCatalog;

/** The one error class of Kiln: a stable code, a human message, optional details and cause. */
export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "KilnError";
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return errorCatalog[this.code].status;
  }
}
