/**
 * The `TokenRegistry` port: API tokens kept in the store, so every node accepts the same ones. Only a
 * token's SHA-256 digest is stored; the token itself is shown once, when it is created.
 */

export type TokenRole = "deploy" | "run" | "read";

/** An admin token may do everything; a project token only what its role allows in its project. */
export type TokenScope = { kind: "admin" } | { kind: "project"; project: string; role: TokenRole };

export interface TokenRecord {
  id: string;
  name: string;
  scope: TokenScope;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface NewToken {
  id: string;
  name: string;
  /** SHA-256 of the token. */
  digest: Buffer;
  scope: TokenScope;
  createdAt: Date;
  expiresAt: Date | null;
}

export interface TokenRegistry {
  /** False when the scope's project does not exist (nothing is stored then). */
  createToken(token: NewToken): Promise<boolean>;
  /** The token with that digest, revoked or not; null when none has it. */
  findToken(digest: Buffer): Promise<TokenRecord | null>;
  /** Newest first; revoked tokens too. `project` keeps those scoped to it. */
  listTokens(project?: string): Promise<TokenRecord[]>;
  /**
   * Revokes it at `now`; null when no token has that id, the record otherwise. Revoking a revoked token
   * keeps the time of the first revocation.
   */
  revokeToken(id: string, now: Date): Promise<TokenRecord | null>;
  /**
   * Records use at `at` for each id, in one statement (a node batches these): `lastUsedAt` only moves
   * forward, so a late batch never winds it back. Unknown ids are ignored.
   */
  recordTokenUse(ids: readonly string[], at: Date): Promise<void>;
}
