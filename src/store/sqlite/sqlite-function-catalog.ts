/** The SQLite `FunctionCatalog`: functions and revisions (archives included). */
import { defaultSettings, type FunctionSettings } from "../../domain/function-settings.js";
import type { DeployInput, DeployResult, FunctionCatalog, FunctionRecord, RevisionRecord } from "../store.js";
import { projectNotFound } from "../project-catalog.js";
import { toFunctionRecord, toRevisionRecord, type FunctionRow, type RevisionRow } from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";

export class SqliteFunctionCatalog implements FunctionCatalog {
  constructor(private readonly database: SqliteDatabase) {}

  deployRevision(input: DeployInput): Promise<DeployResult> {
    return this.database.commits.write(() => {
      if (this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(input.project) === undefined)
        throw projectNotFound(input.project);
      const now = input.now.getTime();
      const existing = this.selectFunction(input.project, input.name);
      this.database
        .sql("INSERT INTO archives (digest, data) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .run(input.digest, input.archive);
      this.database
        .sql(
          `INSERT INTO revisions (project, function_name, digest, spec, size_bytes, created_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        )
        .run(input.project, input.name, input.digest, JSON.stringify(input.spec), input.archive.length, now);
      const settings: FunctionSettings = {
        ...(existing?.settings ?? defaultSettings),
        ...input.settings,
        env: { ...existing?.settings.env, ...input.settings.env },
      };
      this.database
        .sql(
          `INSERT INTO functions (project, name, current_revision, settings, created_at, updated_at)
           VALUES (@project, @name, @digest, @settings, @now, @now)
           ON CONFLICT (project, name) DO UPDATE
             SET current_revision = @digest, settings = @settings, updated_at = @now`,
        )
        .run({
          project: input.project,
          name: input.name,
          digest: input.digest,
          settings: JSON.stringify(settings),
          now,
        });
      return {
        function: this.requireFunction(input.project, input.name),
        revision: this.requireRevision(input.project, input.name, input.digest),
        created: existing?.currentRevision !== input.digest,
      };
    }, true);
  }

  getFunction(project: string, name: string): Promise<FunctionRecord | null> {
    return Promise.resolve(this.selectFunction(project, name));
  }

  listFunctions(project: string): Promise<FunctionRecord[]> {
    const rows = this.database
      .sql<[string], FunctionRow>(`${selectFunctionSql} WHERE f.project = ? ORDER BY f.name`)
      .all(project);
    return Promise.resolve(rows.map(toFunctionRecord));
  }

  listWarmFunctions(): Promise<FunctionRecord[]> {
    const rows = this.database
      .sql<[], FunctionRow>(
        `${selectFunctionSql} WHERE json_extract(f.settings, '$.minWarm') > 0 ORDER BY f.project, f.name`,
      )
      .all();
    return Promise.resolve(rows.map(toFunctionRecord));
  }

  updateFunctionSettings(
    project: string,
    name: string,
    settings: FunctionSettings,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.database.commits.write(() => {
      this.database
        .sql("UPDATE functions SET settings = ?, updated_at = ? WHERE project = ? AND name = ?")
        .run(JSON.stringify(settings), now.getTime(), project, name);
      return this.selectFunction(project, name);
    }, true);
  }

  listRevisions(project: string, name: string): Promise<RevisionRecord[]> {
    const rows = this.database
      .sql<[string, string], RevisionRow>(
        `SELECT digest, spec, size_bytes, created_at FROM revisions
         WHERE project = ? AND function_name = ? ORDER BY created_at DESC, rowid DESC`,
      )
      .all(project, name);
    return Promise.resolve(rows.map(toRevisionRecord));
  }

  setCurrentRevision(
    project: string,
    name: string,
    digest: string,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.database.commits.write(() => {
      const changed = this.database
        .sql(
          `UPDATE functions SET current_revision = @digest, updated_at = @now
           WHERE project = @project AND name = @name
             AND EXISTS (SELECT 1 FROM revisions WHERE project = @project AND function_name = @name AND digest = @digest)`,
        )
        .run({ project, name, digest, now: now.getTime() });
      return changed.changes === 0 ? null : this.selectFunction(project, name);
    }, true);
  }

  getRevisionArchive(digest: string): Promise<Uint8Array | null> {
    const row = this.database
      .sql<[string], { data: Buffer }>("SELECT data FROM archives WHERE digest = ?")
      .get(digest);
    return Promise.resolve(row?.data ?? null);
  }

  private selectFunction(project: string, name: string): FunctionRecord | null {
    const row = this.database
      .sql<[string, string], FunctionRow>(`${selectFunctionSql} WHERE f.project = ? AND f.name = ?`)
      .get(project, name);
    return row === undefined ? null : toFunctionRecord(row);
  }

  private requireFunction(project: string, name: string): FunctionRecord {
    const record = this.selectFunction(project, name);
    if (record === null) throw new Error(`function ${project}/${name} vanished inside its transaction`);
    return record;
  }

  private requireRevision(project: string, name: string, digest: string): RevisionRecord {
    const row = this.database
      .sql<[string, string, string], RevisionRow>(
        "SELECT digest, spec, size_bytes, created_at FROM revisions WHERE project = ? AND function_name = ? AND digest = ?",
      )
      .get(project, name, digest);
    if (row === undefined) throw new Error(`revision ${digest} vanished inside its transaction`);
    return toRevisionRecord(row);
  }
}

const selectFunctionSql = `
  SELECT f.project, f.name, f.current_revision, f.settings, r.spec, f.created_at, f.updated_at
  FROM functions f
  JOIN revisions r ON r.project = f.project AND r.function_name = f.name AND r.digest = f.current_revision`;
