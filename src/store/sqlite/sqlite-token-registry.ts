/** The SQLite `TokenRegistry`: API tokens, by the digest of their secret. */
import type { NewToken, TokenRecord, TokenRegistry } from "../store.js";
import { tokenColumns, tokenColumnsOf, toTokenRecord, type TokenRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export class SqliteTokenRegistry implements TokenRegistry {
  constructor(private readonly database: SqliteDatabase) {}

  createToken(token: NewToken): Promise<boolean> {
    const { project, role } = tokenColumnsOf(token.scope);
    return this.database.commits.write(() => {
      if (
        project !== null &&
        this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(project) === undefined
      )
        return false;
      this.database
        .sql(
          `INSERT INTO tokens (id, name, digest, project, role, created_at, expires_at)
           VALUES (@id, @name, @digest, @project, @role, @createdAt, @expiresAt)`,
        )
        .run({
          id: token.id,
          name: token.name,
          digest: token.digest,
          project,
          role,
          createdAt: token.createdAt.getTime(),
          expiresAt: token.expiresAt?.getTime() ?? null,
        });
      return true;
    }, true);
  }

  findToken(digest: Buffer): Promise<TokenRecord | null> {
    const row = this.database
      .sql<[Buffer], TokenRow>(`SELECT ${tokenColumns} FROM tokens WHERE digest = ?`)
      .get(digest);
    return Promise.resolve(row === undefined ? null : toTokenRecord(row));
  }

  listTokens(project?: string): Promise<TokenRecord[]> {
    // Insertion order (rowid) breaks ties between tokens created in the same millisecond.
    const rows =
      project === undefined
        ? this.database
            .sql<[], TokenRow>(`SELECT ${tokenColumns} FROM tokens ORDER BY created_at DESC, rowid DESC`)
            .all()
        : this.database
            .sql<[string], TokenRow>(
              `SELECT ${tokenColumns} FROM tokens WHERE project = ? ORDER BY created_at DESC, rowid DESC`,
            )
            .all(project);
    return Promise.resolve(rows.map(toTokenRecord));
  }

  revokeToken(id: string, now: Date): Promise<TokenRecord | null> {
    return this.database.commits.write(() => {
      const row = this.database
        .sql<[number, string], TokenRow>(
          `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING ${tokenColumns}`,
        )
        .get(now.getTime(), id);
      return row === undefined ? null : toTokenRecord(row);
    }, true);
  }

  recordTokenUse(ids: readonly string[], at: Date): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    // Not durable: a last use lost in a crash of the machine is recorded again at the token's next use.
    return this.database.commits.write(() => {
      this.database
        .sql(
          `UPDATE tokens SET last_used_at = max(coalesce(last_used_at, @at), @at)
           WHERE id IN (SELECT value FROM json_each(@ids))`,
        )
        .run({ ids: JSON.stringify(ids), at: at.getTime() });
    }, false);
  }
}
