/**
 * The embedded `Store`: better-sqlite3 in WAL mode, with group commit for writes, made of one part per
 * concern — the function catalog, the task queue, task reads and the callback outbox — over one
 * database (`sqlite-database.ts`).
 */
import type { Store } from "../store.js";
import { SqliteCallbackOutbox } from "./sqlite-callback-outbox.js";
import { SqliteDatabase, type SqliteStoreOptions } from "./sqlite-database.js";
import { SqliteFunctionCatalog } from "./sqlite-function-catalog.js";
import { SqliteTaskQueue } from "./sqlite-task-queue.js";
import { SqliteTaskReads } from "./sqlite-task-reads.js";

export type { SqliteStoreOptions } from "./sqlite-database.js";

export class SqliteStore implements Store {
  private readonly database: SqliteDatabase;
  private readonly functions: SqliteFunctionCatalog;
  private readonly queue: SqliteTaskQueue;
  private readonly reads: SqliteTaskReads;
  private readonly callbacks: SqliteCallbackOutbox;

  constructor(options: SqliteStoreOptions) {
    this.database = new SqliteDatabase(options);
    this.functions = new SqliteFunctionCatalog(this.database);
    this.queue = new SqliteTaskQueue(this.database);
    this.reads = new SqliteTaskReads(this.database);
    this.callbacks = new SqliteCallbackOutbox(this.database);
  }

  readonly ensureProject: Store["ensureProject"] = (...args) => this.functions.ensureProject(...args);
  readonly hasProject: Store["hasProject"] = (...args) => this.functions.hasProject(...args);
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

  close(): Promise<void> {
    this.database.close();
    return Promise.resolve();
  }
}
