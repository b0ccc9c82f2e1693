/** Maps every failure to the one error shape `{ error: { code, message, details } }`. */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { errorCatalog, KilnError, type ErrorCode } from "../domain/errors.js";
import { StoreUnavailableError, StoreWriteRefusedError } from "../store/store.js";
import { describeSchemaErrors, summariseFieldErrors, type DescribeOptions } from "./schema-errors.js";

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_BODY_TOO_LARGE: "REQUEST_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "BAD_REQUEST",
};

/** How each part of a request is called in validation messages. */
const requestParts: Record<string, { schemaKey: string; describe: DescribeOptions }> = {
  body: { schemaKey: "body", describe: { root: "body", keyNoun: "field", perWhat: " per call" } },
  querystring: { schemaKey: "querystring", describe: { root: "query", keyNoun: "query parameter" } },
  params: { schemaKey: "params", describe: { root: "path", keyNoun: "path parameter" } },
  headers: { schemaKey: "headers", describe: { root: "headers", keyNoun: "header" } },
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | KilnError | StoreUnavailableError, request, reply) => {
    const { code, message, details } = toApiError(error, request);
    if (code === "INTERNAL") {
      request.log.error({ err: error, method: request.method, url: request.url }, "request failed");
      // The id the log line carries, so a report of this answer leads to it.
      return reply.status(500).send({ error: { code, message, details: { requestId: request.id } } });
    }
    if (errorCatalog[code].status === 503) void reply.header("retry-after", "1");
    else if (errorCatalog[code].status >= 500 && !isFunctionOutcome(code))
      request.log.error({ err: error, method: request.method, url: request.url }, "request failed");
    return reply
      .status(errorCatalog[code].status)
      .send({ error: { code, message, details: details ?? null } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: {
        code: "ROUTE_NOT_FOUND",
        message: `no route for ${request.method} ${request.url}`,
        details: null,
      },
    }),
  );
}

/** A sync invocation's function failing or timing out is the function's outcome, not the node's failure. */
function isFunctionOutcome(code: ErrorCode): boolean {
  return code === "FUNCTION_FAILED" || code === "FUNCTION_TIMED_OUT";
}

function toApiError(
  error: FastifyError | KilnError | StoreUnavailableError,
  request: FastifyRequest,
): {
  code: ErrorCode;
  message: string;
  details?: unknown;
} {
  if (error instanceof KilnError) return { code: error.code, message: error.message, details: error.details };
  if (error instanceof StoreWriteRefusedError) {
    return { code: error.reason === "full" ? "STORAGE_FULL" : "STORE_READ_ONLY", message: error.message };
  }
  if (error instanceof StoreUnavailableError) return { code: "STORE_UNAVAILABLE", message: error.message };
  const fsCode = (error as { code?: unknown }).code;
  // The data directory's own files (revisions, scratch space of a deploy) hit the same walls.
  if (fsCode === "ENOSPC" || fsCode === "EDQUOT" || fsCode === "EROFS") {
    return toApiError(new StoreWriteRefusedError(fsCode === "EROFS" ? "read_only" : "full", error), request);
  }
  if (error.validation !== undefined) return describeValidation(error, request);
  const mapped = fastifyCodes[error.code];
  if (mapped !== undefined) return { code: mapped, message: error.message };
  if (error instanceof SyntaxError) return { code: "INVALID_JSON", message: error.message };
  if (error.statusCode !== undefined && error.statusCode < 500)
    return { code: "BAD_REQUEST", message: error.message };
  return { code: "INTERNAL", message: "internal error" };
}

/**
 * Fastify's router refuses some URLs before any hook runs (a path segment over its length limit,
 * bad percent-encoding); they get the one error shape too.
 */
export function answerFrameworkError(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  const message =
    error.code === "FST_ERR_MAX_PARAM_LENGTH"
      ? "a path segment is too long: names are at most 63 characters, task ids at most 64"
      : error.code === "FST_ERR_BAD_URL"
        ? "the URL is not valid: a path segment has a malformed %-escape"
        : error.message;
  void reply.status(400).send({ error: { code: "BAD_REQUEST", message, details: null } });
}

function describeValidation(error: FastifyError, request: FastifyRequest) {
  const part = requestParts[error.validationContext ?? "body"] ?? requestParts.body!;
  const schema = (request.routeOptions.schema as Record<string, unknown> | undefined)?.[part.schemaKey];
  const data =
    part.schemaKey === "body"
      ? request.body
      : part.schemaKey === "querystring"
        ? request.query
        : part.schemaKey === "params"
          ? request.params
          : request.headers;
  const errors = describeSchemaErrors(error.validation ?? [], schema, data, part.describe);
  return {
    code: "BAD_REQUEST" as const,
    message: summariseFieldErrors(errors),
    details: { errors },
  };
}
