/** The PostgreSQL `TokenRegistry`: API tokens, by the digest of their secret, shared by every node. */
import type { NewToken, TokenRecord, TokenRegistry } from "../store.js";
import { tokenColumns, tokenColumnsOf, toTokenRecord, type TokenRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";

/** SQLSTATE of a foreign key violation: here, a token for a project that does not exist. */
const foreignKeyViolation = "23503";

export class PostgresTokenRegistry implements TokenRegistry {
  constructor(private readonly connections: PostgresConnections) {}

  async createToken(token: NewToken): Promise<boolean> {
    const { project, role } = tokenColumnsOf(token.scope);
    try {
      // $1 id, $2 name, $3 digest, $4 project (null: admin), $5 role, $6 created, $7 expires (or null).
      // The foreign key holds the project's row until the insert commits, so a deletion of the project
      // either deletes this token too or is waited for, and the insert then fails.
      await this.connections.db.query({
        text: `INSERT INTO tokens (id, name, digest, project, role, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        values: [
          token.id,
          token.name,
          token.digest,
          project,
          role,
          token.createdAt.getTime(),
          token.expiresAt?.getTime() ?? null,
        ],
      });
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === foreignKeyViolation) return false;
      throw error;
    }
  }

  async findToken(digest: Buffer): Promise<TokenRecord | null> {
    const { rows } = await this.connections.db.query<TokenRow>({
      text: `SELECT ${tokenColumns} FROM tokens WHERE digest = $1`,
      values: [digest],
    });
    return rows[0] === undefined ? null : toTokenRecord(rows[0]);
  }

  async listTokens(project?: string): Promise<TokenRecord[]> {
    // $1 project, or null for all. Insertion order (seq) breaks ties of the same millisecond.
    const { rows } = await this.connections.db.query<TokenRow>({
      text: `SELECT ${tokenColumns} FROM tokens WHERE $1::text IS NULL OR project = $1
               ORDER BY created_at DESC, seq DESC`,
      values: [project ?? null],
    });
    return rows.map(toTokenRecord);
  }

  async revokeToken(id: string, now: Date): Promise<TokenRecord | null> {
    // $1 id, $2 now: a revoked token keeps its first revocation time
    const { rows } = await this.connections.db.query<TokenRow>({
      text: `UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING ${tokenColumns}`,
      values: [id, now.getTime()],
    });
    return rows[0] === undefined ? null : toTokenRecord(rows[0]);
  }

  async recordTokenUse(ids: readonly string[], at: Date): Promise<void> {
    if (ids.length === 0) return;
    // $1 ids, $2 the time of use. greatest() ignores a null: the first use sets it.
    await this.connections.db.query({
      text: "UPDATE tokens SET last_used_at = greatest(last_used_at, $2) WHERE id = ANY($1::text[])",
      values: [ids, at.getTime()],
    });
  }
}
