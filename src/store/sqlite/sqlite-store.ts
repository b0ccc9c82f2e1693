/**
 * The embedded `Store`: better-sqlite3 in WAL mode, with group commit for writes, made of one part per
 * concern — the project and function catalogs, the task queue, task reads, the callback outbox and the
 * token registry — over one database (`sqlite-database.ts`).
 */
import type { Store } from "../store.js";
import { SqliteCallbackOutbox } from "./sqlite-callback-outbox.js";
import { SqliteDatabase, type SqliteStoreOptions } from "./sqlite-database.js";
import { SqliteFunctionCatalog } from "./sqlite-function-catalog.js";
import { SqliteLaneIds } from "./sqlite-lane-ids.js";
import { SqlitePlanCatalog } from "./sqlite-plan-catalog.js";
import { SqliteProjectCatalog } from "./sqlite-project-catalog.js";
import { SqliteTaskQueue } from "./sqlite-task-queue.js";
import { SqliteTaskReads } from "./sqlite-task-reads.js";
import { SqliteTokenRegistry } from "./sqlite-token-registry.js";

export type { SqliteStoreOptions } from "./sqlite-database.js";

export class SqliteStore implements Store {
  private readonly database: SqliteDatabase;
  private readonly projects: SqliteProjectCatalog;
  private readonly plans: SqlitePlanCatalog;
  private readonly functions: SqliteFunctionCatalog;
  private readonly queue: SqliteTaskQueue;
  private readonly reads: SqliteTaskReads;
  private readonly callbacks: SqliteCallbackOutbox;
  private readonly tokens: SqliteTokenRegistry;

  constructor(options: SqliteStoreOptions) {
    this.database = new SqliteDatabase(options);
    // One cache of lane ids: a project's deletion makes the queue forget the lanes it deleted.
    const laneIds = new SqliteLaneIds(this.database);
    this.projects = new SqliteProjectCatalog(this.database, laneIds);
    this.plans = new SqlitePlanCatalog(this.database);
    this.functions = new SqliteFunctionCatalog(this.database);
    this.queue = new SqliteTaskQueue(this.database, laneIds);
    this.reads = new SqliteTaskReads(this.database);
    this.callbacks = new SqliteCallbackOutbox(this.database);
    this.tokens = new SqliteTokenRegistry(this.database);
  }

  readonly ensureProject: Store["ensureProject"] = (...args) => this.projects.ensureProject(...args);
  readonly hasProject: Store["hasProject"] = (...args) => this.projects.hasProject(...args);
  readonly createProject: Store["createProject"] = (...args) => this.projects.createProject(...args);
  readonly getProject: Store["getProject"] = (...args) => this.projects.getProject(...args);
  readonly listProjects: Store["listProjects"] = (...args) => this.projects.listProjects(...args);
  readonly updateProject: Store["updateProject"] = (...args) => this.projects.updateProject(...args);
  readonly countProjectContents: Store["countProjectContents"] = (...args) =>
    this.projects.countProjectContents(...args);
  readonly deleteProject: Store["deleteProject"] = (...args) => this.projects.deleteProject(...args);
  readonly createPlan: Store["createPlan"] = (...args) => this.plans.createPlan(...args);
  readonly getPlan: Store["getPlan"] = (...args) => this.plans.getPlan(...args);
  readonly listPlans: Store["listPlans"] = (...args) => this.plans.listPlans(...args);
  readonly updatePlan: Store["updatePlan"] = (...args) => this.plans.updatePlan(...args);
  readonly deletePlan: Store["deletePlan"] = (...args) => this.plans.deletePlan(...args);
  readonly setProjectPlan: Store["setProjectPlan"] = (...args) => this.plans.setProjectPlan(...args);
  readonly planOfProject: Store["planOfProject"] = (...args) => this.plans.planOfProject(...args);
  readonly listProjectsOnPlan: Store["listProjectsOnPlan"] = (...args) =>
    this.plans.listProjectsOnPlan(...args);
  readonly callbackSecret: Store["callbackSecret"] = (...args) => this.projects.callbackSecret(...args);
  readonly rotateCallbackSecret: Store["rotateCallbackSecret"] = (...args) =>
    this.projects.rotateCallbackSecret(...args);

  readonly deployRevision: Store["deployRevision"] = (...args) => this.functions.deployRevision(...args);
  readonly getFunction: Store["getFunction"] = (...args) => this.functions.getFunction(...args);
  readonly listFunctions: Store["listFunctions"] = (...args) => this.functions.listFunctions(...args);
  readonly listWarmFunctions: Store["listWarmFunctions"] = (...args) =>
    this.functions.listWarmFunctions(...args);
  readonly updateFunctionSettings: Store["updateFunctionSettings"] = (...args) =>
    this.functions.updateFunctionSettings(...args);
  readonly listRevisions: Store["listRevisions"] = (...args) => this.functions.listRevisions(...args);
  readonly setCurrentRevision: Store["setCurrentRevision"] = (...args) =>
    this.functions.setCurrentRevision(...args);
  readonly getRevisionArchive: Store["getRevisionArchive"] = (...args) =>
    this.functions.getRevisionArchive(...args);

  readonly enqueueTasks: Store["enqueueTasks"] = (...args) => this.queue.enqueueTasks(...args);
  readonly enqueueAndClaimTasks: Store["enqueueAndClaimTasks"] = (...args) =>
    this.queue.enqueueAndClaimTasks(...args);
  readonly claimTasks: Store["claimTasks"] = (...args) => this.queue.claimTasks(...args);
  readonly finishAttempts: Store["finishAttempts"] = (...args) => this.queue.finishAttempts(...args);
  readonly updateProgress: Store["updateProgress"] = (...args) => this.queue.updateProgress(...args);
  readonly releaseDueTasks: Store["releaseDueTasks"] = (...args) => this.queue.releaseDueTasks(...args);
  readonly nextRunAt: Store["nextRunAt"] = (...args) => this.queue.nextRunAt(...args);
  readonly listReadyLanes: Store["listReadyLanes"] = (...args) => this.queue.listReadyLanes(...args);
  readonly recoverInterruptedTasks: Store["recoverInterruptedTasks"] = (...args) =>
    this.queue.recoverInterruptedTasks(...args);
  readonly handBackTasks: Store["handBackTasks"] = (...args) => this.queue.handBackTasks(...args);
  readonly cancelPendingTask: Store["cancelPendingTask"] = (...args) => this.queue.cancelPendingTask(...args);
  readonly requeueFinishedTask: Store["requeueFinishedTask"] = (...args) =>
    this.queue.requeueFinishedTask(...args);

  readonly getTask: Store["getTask"] = (...args) => this.reads.getTask(...args);
  readonly watchTask: Store["watchTask"] = (...args) => this.reads.watchTask(...args);
  readonly listTasks: Store["listTasks"] = (...args) => this.reads.listTasks(...args);
  readonly getTaskLog: Store["getTaskLog"] = (...args) => this.reads.getTaskLog(...args);

  readonly claimDueCallbacks: Store["claimDueCallbacks"] = (...args) =>
    this.callbacks.claimDueCallbacks(...args);
  readonly nextCallbackAt: Store["nextCallbackAt"] = (...args) => this.callbacks.nextCallbackAt(...args);
  readonly recordCallbackAttempt: Store["recordCallbackAttempt"] = (...args) =>
    this.callbacks.recordCallbackAttempt(...args);

  readonly createToken: Store["createToken"] = (...args) => this.tokens.createToken(...args);
  readonly findToken: Store["findToken"] = (...args) => this.tokens.findToken(...args);
  readonly listTokens: Store["listTokens"] = (...args) => this.tokens.listTokens(...args);
  readonly revokeToken: Store["revokeToken"] = (...args) => this.tokens.revokeToken(...args);
  readonly recordTokenUse: Store["recordTokenUse"] = (...args) => this.tokens.recordTokenUse(...args);

  close(): Promise<void> {
    this.database.close();
    return Promise.resolve();
  }
}
