/** The PostgreSQL `FunctionCatalog`: functions and revisions (archives included). */
import { defaultSettings, type FunctionSettings } from "../../domain/function-settings.js";
import type { DeployInput, DeployResult, FunctionCatalog, FunctionRecord, RevisionRecord } from "../store.js";
import { projectNotFound } from "../project-catalog.js";
import { toFunctionRecord, toRevisionRecord, type FunctionRow, type RevisionRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { countInRunningSql } from "./queue-statements.js";
import { selectFunction, selectFunctionSql, toBuffer, type Queryable } from "./statements.js";

export class PostgresFunctionCatalog implements FunctionCatalog {
  constructor(private readonly connections: PostgresConnections) {}

  deployRevision(input: DeployInput): Promise<DeployResult> {
    return this.connections.transaction(async (db) => {
      const now = input.now.getTime();
      // $1 project, $2 function: deploys of one function take turns, so each merges its settings over
      // the previous one's (a row lock would not cover the first deploy, when there is no row yet).
      await db.query({
        text: "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
        values: [input.project, input.name],
      });
      // $1 project, held (KEY SHARE) as the foreign key of `functions` would hold it, but first: a
      // deletion of the project locks it, then the archives, so taking them in that order too means
      // neither waits for the other in a circle.
      const { rowCount: projects } = await db.query({
        text: "SELECT 1 FROM projects WHERE name = $1 FOR KEY SHARE",
        values: [input.project],
      });
      if (projects === 0) throw projectNotFound(input.project);
      const existing = await selectFunction(db, input.project, input.name);
      // $1 digest, $2 the archive bytes. The archive is then held (KEY SHARE): the deletion of another
      // project whose revisions used it may have locked it to delete it, so wait for that, and put it
      // back if it went.
      const insertArchive = () =>
        db.query({
          text: "INSERT INTO archives (digest, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
          values: [input.digest, toBuffer(input.archive)],
        });
      await insertArchive();
      const { rowCount: archives } = await db.query({
        text: "SELECT 1 FROM archives WHERE digest = $1 FOR KEY SHARE",
        values: [input.digest],
      });
      if (archives === 0) await insertArchive();
      // $1 project, $2 function, $3 digest, $4 spec JSON, $5 archive size, $6 now
      await db.query({
        text: `INSERT INTO revisions (project, function_name, digest, spec, size_bytes, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        values: [
          input.project,
          input.name,
          input.digest,
          JSON.stringify(input.spec),
          input.archive.length,
          now,
        ],
      });
      const settings: FunctionSettings = {
        ...(existing?.settings ?? defaultSettings),
        ...input.settings,
        env: { ...existing?.settings.env, ...input.settings.env },
      };
      // $1 project, $2 function, $3 digest, $4 settings JSON, $5 now
      await db.query({
        text: `INSERT INTO functions (project, name, current_revision, settings, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (project, name) DO UPDATE
                   SET current_revision = $3, settings = $4, updated_at = $5`,
        values: [input.project, input.name, input.digest, JSON.stringify(settings), now],
      });
      if (settings.maxConcurrency > 0) await countInRunning(db, input.project, input.name);
      const record = await selectFunction(db, input.project, input.name);
      // $1 project, $2 function, $3 digest
      const { rows } = await db.query<RevisionRow>({
        text: `SELECT digest, spec, size_bytes, created_at FROM revisions
                 WHERE project = $1 AND function_name = $2 AND digest = $3`,
        values: [input.project, input.name, input.digest],
      });
      if (record === null || rows[0] === undefined)
        throw new Error(`function ${input.project}/${input.name} vanished inside its transaction`);
      return {
        function: record,
        revision: toRevisionRecord(rows[0]),
        created: existing?.currentRevision !== input.digest,
      };
    });
  }

  getFunction(project: string, name: string): Promise<FunctionRecord | null> {
    return selectFunction(this.connections.db, project, name);
  }

  async listFunctions(project: string): Promise<FunctionRecord[]> {
    // $1 project
    const { rows } = await this.connections.db.query<FunctionRow>({
      text: `${selectFunctionSql} WHERE f.project = $1 ORDER BY f.name`,
      values: [project],
    });
    return rows.map(toFunctionRecord);
  }

  async listWarmFunctions(): Promise<FunctionRecord[]> {
    // Filtered here, not with settings::jsonb: jsonb rejects the \u0000 escape an env value may hold,
    // and one such function would fail every node's start. Called once per start, over all functions.
    const { rows } = await this.connections.db.query<FunctionRow>({
      text: `${selectFunctionSql} ORDER BY f.project, f.name`,
    });
    return rows.map(toFunctionRecord).filter((record) => record.settings.minWarm > 0);
  }

  updateFunctionSettings(
    project: string,
    name: string,
    settings: FunctionSettings,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.connections.transaction(async (db) => {
      // $1 project, $2 function, $3 settings JSON, $4 now
      const { rowCount } = await db.query({
        text: "UPDATE functions SET settings = $3, updated_at = $4 WHERE project = $1 AND name = $2",
        values: [project, name, JSON.stringify(settings), now.getTime()],
      });
      if (rowCount !== 0 && settings.maxConcurrency > 0) await countInRunning(db, project, name);
      // Read by a later statement: its snapshot sees a revision that a deploy we waited for committed.
      return rowCount === 0 ? null : selectFunction(db, project, name);
    });
  }

  async listRevisions(project: string, name: string): Promise<RevisionRecord[]> {
    // $1 project, $2 function
    const { rows } = await this.connections.db.query<RevisionRow>({
      text: `SELECT digest, spec, size_bytes, created_at FROM revisions
               WHERE project = $1 AND function_name = $2 ORDER BY created_at DESC, seq DESC`,
      values: [project, name],
    });
    return rows.map(toRevisionRecord);
  }

  setCurrentRevision(
    project: string,
    name: string,
    digest: string,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.connections.transaction(async (db) => {
      // $1 project, $2 function, $3 digest, $4 now
      const { rowCount } = await db.query({
        text: `UPDATE functions SET current_revision = $3, updated_at = $4
                 WHERE project = $1 AND name = $2
                   AND EXISTS (SELECT 1 FROM revisions WHERE project = $1 AND function_name = $2 AND digest = $3)`,
        values: [project, name, digest, now.getTime()],
      });
      return rowCount === 0 ? null : selectFunction(db, project, name);
    });
  }

  async getRevisionArchive(digest: string): Promise<Uint8Array | null> {
    const { rows } = await this.connections.db.query<{ data: Buffer }>({
      text: "SELECT data FROM archives WHERE digest = $1",
      values: [digest],
    });
    return rows[0]?.data ?? null;
  }
}

/** Attempts claimed while the function had no limit count against the one it has now (`countInRunningSql`). */
async function countInRunning(db: Queryable, project: string, name: string): Promise<void> {
  // $1 project, $2 function
  await db.query({ text: countInRunningSql, values: [project, name] });
}
