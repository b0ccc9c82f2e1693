/**
 * Bearer-token authentication and access for every route but the health check and the OpenAPI
 * document. The bootstrap admin token (configured, or kept in the data directory) is checked in
 * memory; any other token is looked up in the store. A token of one project is answered about another
 * project exactly as if that project did not exist.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { KilnError } from "../domain/errors.js";
import type { TokenRecord } from "../store/token-registry.js";
import { roleAllows, rolesAllowing, type Principal } from "./access.js";
import type { StoredTokens } from "./stored-tokens.js";

const publicRoutes = new Set(["/healthz", "/openapi.json"]);

export function registerAuth(app: FastifyInstance, adminToken: string, storedTokens: StoredTokens): void {
  const adminDigest = digest(adminToken);
  // Set by the hook below before any handler runs.
  app.decorateRequest("principal", null as never);
  app.addHook("onRequest", async (request) => {
    if (publicRoutes.has(request.routeOptions.url ?? "")) return;
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? "");
    if (match?.[1] === undefined) {
      throw new KilnError("UNAUTHORIZED", "send the token as 'Authorization: Bearer <token>'");
    }
    const presented = digest(match[1]);
    // Compared as digests so the comparison takes the same time whatever the length of the guess.
    request.principal = timingSafeEqual(presented, adminDigest)
      ? { kind: "admin", tokenId: null }
      : principalOf(await storedTokens.find(presented), new Date());
    // An unknown route answers ROUTE_NOT_FOUND to any valid token.
    if (!request.is404) checkAccess(request);
  });
}

export function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

function principalOf(record: TokenRecord | null, now: Date): Principal {
  if (record === null) throw new KilnError("UNAUTHORIZED", "the token is wrong");
  if (record.revokedAt !== null) {
    throw new KilnError("UNAUTHORIZED", `the token '${record.name}' was revoked`);
  }
  if (record.expiresAt !== null && record.expiresAt <= now) {
    throw new KilnError(
      "UNAUTHORIZED",
      `the token '${record.name}' expired at ${record.expiresAt.toISOString()}`,
    );
  }
  const { scope } = record;
  return scope.kind === "admin"
    ? { kind: "admin", tokenId: record.id }
    : { kind: "project", project: scope.project, role: scope.role, tokenId: record.id };
}

function checkAccess(request: FastifyRequest): void {
  const { principal } = request;
  if (principal.kind === "admin") return;
  const needed = request.routeOptions.config.access ?? "admin";
  if (needed === "admin") {
    throw new KilnError(
      "FORBIDDEN",
      `this needs an admin token; the token is one of project '${principal.project}'`,
    );
  }
  const { project } = request.params as { project?: string };
  // Before any validation: another project's existence, functions and tasks stay unseen.
  if (project !== undefined && project !== principal.project) {
    throw new KilnError("PROJECT_NOT_FOUND", `no project '${project}'`);
  }
  if (!roleAllows(principal.role, needed)) {
    throw new KilnError(
      "FORBIDDEN",
      `a token with role '${principal.role}' cannot do this; it needs role ${rolesAllowing(needed)
        .map((role) => `'${role}'`)
        .join(" or ")}`,
    );
  }
}
