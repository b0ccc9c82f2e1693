/**
 * Who may call a route. Every route states what it needs in its `config.access`; a route that states
 * nothing needs an admin token, so a new route cannot be left open by forgetting.
 */
import type { TokenRole } from "../store/token-registry.js";

/** What a route needs: an admin token, or a token of the route's project with at least this role. */
export type Access = "admin" | TokenRole;

/** Who is calling: from the bootstrap admin token, or from a token kept in the store. */
export type Principal =
  | { kind: "admin"; tokenId: string | null }
  | { kind: "project"; project: string; role: TokenRole; tokenId: string };

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal;
  }
}

/** Each role may do what the ones before it may. */
const roleOrder: readonly TokenRole[] = ["read", "run", "deploy"];

export function roleAllows(role: TokenRole, needed: TokenRole): boolean {
  return roleOrder.indexOf(role) >= roleOrder.indexOf(needed);
}

/** The roles that may do what `needed` allows, for messages. */
export function rolesAllowing(needed: TokenRole): TokenRole[] {
  return roleOrder.slice(roleOrder.indexOf(needed));
}

/** The projects a principal may see: all, or its own. */
export function canSeeProject(principal: Principal, project: string): boolean {
  return principal.kind === "admin" || principal.project === project;
}
