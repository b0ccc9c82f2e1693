/**
 * The SQLite store's database, shared by its parts (one file per concern): the connection in WAL mode,
 * its migrations, the group commit of writes and the cache of prepared statements.
 */
import Database from "better-sqlite3";
import { GroupCommit } from "./group-commit.js";
import { migrations } from "./migrations/index.js";

export interface SqliteStoreOptions {
  /** A file path, or ":memory:" for tests. */
  path: string;
  /** A task's log is cut (and the cut marked) past this many characters. */
  maxLogChars: number;
}

export class SqliteDatabase {
  readonly db: Database.Database;
  readonly commits: GroupCommit;
  readonly maxLogChars: number;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(options: SqliteStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    this.commits = new GroupCommit(this.db, options.path === ":memory:" ? null : `${options.path}-wal`);
    this.maxLogChars = options.maxLogChars;
  }

  /** Prepared once per SQL text: preparing costs more than running most of these statements. */
  sql<Params extends unknown[] = unknown[], Row = unknown>(text: string): Database.Statement<Params, Row> {
    let statement = this.statements.get(text);
    if (statement === undefined) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement as Database.Statement<Params, Row>;
  }

  private migrate(): void {
    const applied = this.db.pragma("user_version", { simple: true }) as number;
    migrations.slice(applied).forEach((migration, index) => {
      this.db.transaction(() => {
        this.db.exec(migration.up);
        this.db.pragma(`user_version = ${applied + index + 1}`);
      })();
    });
  }

  close(): void {
    this.commits.close();
    this.db.close();
  }
}
