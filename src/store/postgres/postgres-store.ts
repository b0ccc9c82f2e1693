/**
 * The distributed `Store`: PostgreSQL, shared by every node, made of one part per concern — the
 * project and function catalogs, the task queue (with the recovery of lost attempts), task reads, the
 * callback outbox and the token registry — over one set of connections (`postgres-connections.ts`).
 */
import type { Store } from "../store.js";
import { PostgresCallbackOutbox } from "./postgres-callback-outbox.js";
import { PostgresConnections, type PostgresStoreOptions } from "./postgres-connections.js";
import { PostgresFunctionCatalog } from "./postgres-function-catalog.js";
import { PostgresPlanCatalog } from "./postgres-plan-catalog.js";
import { PostgresProjectCatalog } from "./postgres-project-catalog.js";
import { PostgresTaskQueue } from "./postgres-task-queue.js";
import { PostgresTaskReads } from "./postgres-task-reads.js";
import { PostgresTaskRecovery, type Recovery } from "./postgres-task-recovery.js";
import { PostgresTokenRegistry } from "./postgres-token-registry.js";

export type { PostgresStoreOptions } from "./postgres-connections.js";
export type { Recovery } from "./postgres-task-recovery.js";

export class PostgresStore implements Store {
  private readonly connections: PostgresConnections;
  private readonly projects: PostgresProjectCatalog;
  private readonly plans: PostgresPlanCatalog;
  private readonly functions: PostgresFunctionCatalog;
  private readonly queue: PostgresTaskQueue;
  private readonly recovery: PostgresTaskRecovery;
  private readonly reads: PostgresTaskReads;
  private readonly callbacks: PostgresCallbackOutbox;
  private readonly tokens: PostgresTokenRegistry;

  /** Connects lazily and does not migrate: see `open`. */
  constructor(options: PostgresStoreOptions) {
    this.connections = new PostgresConnections(options);
    this.projects = new PostgresProjectCatalog(this.connections);
    this.plans = new PostgresPlanCatalog(this.connections);
    this.functions = new PostgresFunctionCatalog(this.connections);
    this.queue = new PostgresTaskQueue(this.connections);
    this.recovery = new PostgresTaskRecovery(this.connections);
    this.reads = new PostgresTaskReads(this.connections);
    this.callbacks = new PostgresCallbackOutbox(this.connections);
    this.tokens = new PostgresTokenRegistry(this.connections);
  }

  /** A store whose schema is migrated to the latest version. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  /** Applies missing migrations, in one transaction that nodes starting together take turns on. */
  migrate(): Promise<void> {
    return this.connections.migrate();
  }

  get schema(): string {
    return this.connections.schema;
  }

  get nodeId(): string {
    return this.connections.nodeId;
  }

  /**
   * Forgets the lane ids cached for `project` (for every project, without one): another node deleted
   * it, and its lanes with it.
   */
  forgetLaneIds(project?: string): void {
    this.connections.laneIds.forgetProject(project);
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
  readonly cancelPendingTask: Store["cancelPendingTask"] = (...args) => this.queue.cancelPendingTask(...args);
  readonly requeueFinishedTask: Store["requeueFinishedTask"] = (...args) =>
    this.queue.requeueFinishedTask(...args);
  readonly recoverInterruptedTasks: Store["recoverInterruptedTasks"] = (...args) =>
    this.recovery.recoverInterruptedTasks(...args);
  readonly handBackTasks: Store["handBackTasks"] = (...args) => this.recovery.handBackTasks(...args);

  /**
   * Ends as `lost` the attempts running on nodes whose lease has expired (by the database's clock):
   * those nodes died, or lost the database for longer than a lease. Their tasks are queued again.
   */
  recoverExpiredLeases(now: Date, maxLostAttempts: number): Promise<Recovery> {
    return this.recovery.recoverExpiredLeases(now, maxLostAttempts);
  }

  /**
   * Ends as `lost` this node's running attempts that it does not know of (see
   * `ClusterEvents.ownTaskIds`), among those claimed before `claimedBefore`.
   */
  recoverOrphanedTasks(
    now: Date,
    maxLostAttempts: number,
    known: string[],
    claimedBefore: Date,
  ): Promise<Recovery> {
    return this.recovery.recoverOrphanedTasks(now, maxLostAttempts, known, claimedBefore);
  }

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

  /** Ends the pools once; later calls wait for the same end. Drops nothing. */
  close(): Promise<void> {
    return this.connections.close();
  }
}
