/** The `ProjectCatalog` port: the projects that group functions, tasks and tokens. */
import { KilnError } from "../domain/errors.js";

export interface ProjectRecord {
  name: string;
  description: string;
  /** The plan the project is on (`PlanCatalog`); null: none. */
  plan: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What a project holds, counted when it is deleted or shown. */
export interface ProjectContents {
  functions: number;
  /** Queued, delayed or running tasks. */
  unfinishedTasks: number;
}

export type DeleteProjectResult =
  | { deleted: true }
  | { deleted: false; reason: "not_found" }
  | { deleted: false; reason: "unfinished_tasks"; unfinishedTasks: number };

export interface ProjectCatalog {
  /** Creates the project (without a description) unless it exists; never changes one that does. */
  ensureProject(name: string, now: Date): Promise<void>;
  hasProject(name: string): Promise<boolean>;
  /** Null when a project of that name exists already (which is left as it was). */
  createProject(name: string, description: string, now: Date): Promise<ProjectRecord | null>;
  getProject(name: string): Promise<ProjectRecord | null>;
  /** By name. */
  listProjects(): Promise<ProjectRecord[]>;
  /** Applies what `change` names; `updatedAt` becomes `now`. Null when there is no such project. */
  updateProject(name: string, change: { description?: string }, now: Date): Promise<ProjectRecord | null>;
  /** Zero of each for a project that does not exist. */
  countProjectContents(name: string): Promise<ProjectContents>;
  /**
   * The key that signs the project's callbacks: the one stored, or else `candidate`, stored now (when
   * nodes race, the first to store one wins and all answer with it). Null when there is no such project.
   */
  callbackSecret(project: string, candidate: string): Promise<string | null>;
  /** Replaces the project's callback key; false when there is no such project. */
  rotateCallbackSecret(project: string, secret: string, now: Date): Promise<boolean>;
  /**
   * Deletes the project with everything it holds — functions, their revisions (and archives no other
   * revision uses), tasks with their payloads, results, attempts, logs and pending callbacks, and its
   * tokens — in one transaction, unless it has a queued, delayed or running task.
   *
   * An enqueue into the project at the same time either commits first, and the deletion is refused for
   * its tasks, or is refused with `PROJECT_NOT_FOUND`; a manual retry either commits first too or finds
   * no task. No task is ever left behind in a deleted project. The name may be used again afterwards.
   */
  deleteProject(name: string): Promise<DeleteProjectResult>;
}

/** What a write into a project that does not exist (or was just deleted) rejects with. */
export function projectNotFound(project: string): KilnError {
  return new KilnError("PROJECT_NOT_FOUND", `no project '${project}'`);
}
