/** Routes that create, list and revoke the API tokens kept in the store (admin tokens only). */
import { randomBytes } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import type { TokenRole, TokenScope } from "../../store/token-registry.js";
import { digest } from "../auth.js";
import { presentToken } from "../present.js";
import { CreateTokenBody, TokenListQuery, TokenParams } from "../schemas.js";
import type { ApiContext } from "../server.js";

export function tokenRoutes({ store }: ApiContext): FastifyPluginAsyncTypebox {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/tokens",
      {
        schema: { body: CreateTokenBody, summary: "Create a token; its secret is in this answer only" },
        config: { access: "admin" },
      },
      async (request, reply) => {
        const { name, project, role, expiresInS } = request.body;
        const scope = scopeOf(role, project);
        const secret = `kiln_t_${randomBytes(32).toString("base64url")}`;
        const now = new Date();
        const token = {
          id: `tok_${randomBytes(9).toString("hex")}`,
          name,
          digest: digest(secret),
          scope,
          createdAt: now,
          expiresAt: expiresInS === undefined ? null : new Date(now.getTime() + expiresInS * 1000),
        };
        if (!(await store.createToken(token))) {
          throw new KilnError("PROJECT_NOT_FOUND", `no project '${project ?? ""}'`);
        }
        return reply.status(201).send({
          token: presentToken({ ...token, lastUsedAt: null, revokedAt: null }),
          secret,
        });
      },
    );

    app.get(
      "/v1/tokens",
      {
        schema: { querystring: TokenListQuery, summary: "List tokens, revoked ones too" },
        config: { access: "admin" },
      },
      async (request) => ({ tokens: (await store.listTokens(request.query.project)).map(presentToken) }),
    );

    app.delete(
      "/v1/tokens/:id",
      {
        schema: { params: TokenParams, summary: "Revoke a token: every node refuses it within a second" },
        config: { access: "admin" },
      },
      async (request) => {
        const revoked = await store.revokeToken(request.params.id, new Date());
        if (revoked === null) throw new KilnError("TOKEN_NOT_FOUND", `no token '${request.params.id}'`);
        return presentToken(revoked);
      },
    );
  };
}

function scopeOf(role: "admin" | TokenRole, project: string | undefined): TokenScope {
  if (role === "admin") {
    if (project !== undefined) throw badScope("an admin token is for every project; leave out 'project'");
    return { kind: "admin" };
  }
  if (project === undefined) throw badScope(`a '${role}' token needs the 'project' it is for`);
  return { kind: "project", project, role };
}

function badScope(message: string): KilnError {
  return new KilnError("BAD_REQUEST", message, { details: { errors: [{ field: "project", message }] } });
}
