/**
 * The `FunctionCatalog` port: functions, their settings and their immutable revisions (the projects
 * they belong to are the `ProjectCatalog`'s).
 */
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";

export interface FunctionRecord {
  project: string;
  name: string;
  currentRevision: string;
  /** The spec of the current revision. */
  spec: RevisionSpec;
  settings: FunctionSettings;
  createdAt: Date;
  updatedAt: Date;
}

export interface RevisionRecord {
  digest: string;
  spec: RevisionSpec;
  sizeBytes: number;
  createdAt: Date;
}

export interface DeployInput {
  project: string;
  name: string;
  digest: string;
  spec: RevisionSpec;
  /** The packed code (tar.gz), kept so any node can unpack the revision. */
  archive: Uint8Array;
  /**
   * Settings from the function's manifest. Those it names replace the function's current ones (or the
   * defaults, for a new function); `env` is merged over the env the function already has.
   */
  settings: Partial<FunctionSettings>;
  now: Date;
}

export interface DeployResult {
  function: FunctionRecord;
  revision: RevisionRecord;
  /** False when the content equals the current revision's: nothing changed but the settings. */
  created: boolean;
}

export interface FunctionCatalog {
  /** Rejects with `PROJECT_NOT_FOUND` when the project does not exist (or is being deleted). */
  deployRevision(input: DeployInput): Promise<DeployResult>;
  getFunction(project: string, name: string): Promise<FunctionRecord | null>;
  listFunctions(project: string): Promise<FunctionRecord[]>;
  /** Functions of every project that ask for warm sandboxes (`minWarm` > 0), for a node starting up. */
  listWarmFunctions(): Promise<FunctionRecord[]>;
  updateFunctionSettings(
    project: string,
    name: string,
    settings: FunctionSettings,
    now: Date,
  ): Promise<FunctionRecord | null>;
  listRevisions(project: string, name: string): Promise<RevisionRecord[]>;
  /** Makes an earlier revision current again; null when the function has no such revision. */
  setCurrentRevision(
    project: string,
    name: string,
    digest: string,
    now: Date,
  ): Promise<FunctionRecord | null>;
  getRevisionArchive(digest: string): Promise<Uint8Array | null>;
}
