/** Bearer-token authentication for every route but the health check and the OpenAPI document. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { KilnError } from "../domain/errors.js";

const publicRoutes = new Set(["/healthz", "/openapi.json"]);

export function registerAuth(app: FastifyInstance, token: string): void {
  const expected = digest(token);
  app.addHook("onRequest", (request, _reply, done) => {
    if (publicRoutes.has(request.routeOptions.url ?? "")) return done();
    const header = request.headers.authorization ?? "";
    const match = /^Bearer (.+)$/.exec(header);
    if (match?.[1] === undefined) {
      return done(new KilnError("UNAUTHORIZED", "send the token as 'Authorization: Bearer <token>'"));
    }
    // Compare digests so the comparison takes the same time whatever the length of the guess.
    if (!timingSafeEqual(digest(match[1]), expected))
      return done(new KilnError("UNAUTHORIZED", "the token is wrong"));
    done();
  });
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
