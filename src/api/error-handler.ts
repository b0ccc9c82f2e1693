/** Maps every failure to the one error shape `{ error: { code, message, details } }`. */
import type { FastifyError, FastifyInstance } from "fastify";
import { errorCatalog, KilnError, type ErrorCode } from "../domain/errors.js";
import { StoreUnavailableError, StoreWriteRefusedError } from "../store/store.js";

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_BODY_TOO_LARGE: "REQUEST_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "BAD_REQUEST",
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | KilnError | StoreUnavailableError, request, reply) => {
    const { code, message, details } = toApiError(error);
    if (error instanceof StoreUnavailableError) void reply.header("retry-after", "1");
    else if (errorCatalog[code].status >= 500) request.log.error({ err: error }, "request failed");
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

function toApiError(error: FastifyError | KilnError | StoreUnavailableError): {
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
    return toApiError(new StoreWriteRefusedError(fsCode === "EROFS" ? "read_only" : "full", error));
  }
  if (error.validation !== undefined) {
    return {
      code: "BAD_REQUEST",
      message: `${error.validationContext ?? "request"}${error.validation[0]?.instancePath ?? ""} ${error.validation[0]?.message ?? "is invalid"}`,
      details: { errors: error.validation },
    };
  }
  const mapped = fastifyCodes[error.code];
  if (mapped !== undefined) return { code: mapped, message: error.message };
  if (error instanceof SyntaxError) return { code: "INVALID_JSON", message: error.message };
  if (error.statusCode !== undefined && error.statusCode < 500)
    return { code: "BAD_REQUEST", message: error.message };
  return { code: "INTERNAL", message: "internal error" };
}
