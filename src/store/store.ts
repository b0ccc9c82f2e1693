/**
 * The `Store`: durable state of functions, revisions and tasks, shaped by what the dispatcher and the
 * API need rather than by one database, as one port per concern — `ProjectCatalog`, `PlanCatalog`,
 * `FunctionCatalog`, `TaskQueue`, `TaskReads`, `CallbackOutbox`, `TokenRegistry` (and, for many nodes,
 * `NodeRegistry` in `node-registry.ts`). Adapters: `sqlite/` (embedded, one node) and `postgres/`
 * (shared by many nodes), one file per concern. Every method that changes state resolves only once the
 * change is committed.
 */
import type { CallbackOutbox } from "./callback-outbox.js";
import type { FunctionCatalog } from "./function-catalog.js";
import type { PlanCatalog } from "./plan-catalog.js";
import type { ProjectCatalog } from "./project-catalog.js";
import type { TaskQueue } from "./task-queue.js";
import type { TaskReads } from "./task-reads.js";
import type { TokenRegistry } from "./token-registry.js";

export type { DueCallback, CallbackOutbox } from "./callback-outbox.js";
export type {
  DeployInput,
  DeployResult,
  FunctionCatalog,
  FunctionRecord,
  RevisionRecord,
} from "./function-catalog.js";
export type {
  DeleteProjectResult,
  ProjectCatalog,
  ProjectContents,
  ProjectRecord,
} from "./project-catalog.js";
export type {
  AttemptEnd,
  ClaimedTask,
  ClaimOptions,
  ClaimOrder,
  EnqueueClaim,
  EnqueueResult,
  NewTask,
  TaskQueue,
} from "./task-queue.js";
export type { TaskPage, TaskQuery, TaskReads } from "./task-reads.js";
export type { PlanCatalog, PlanRecord, SetProjectPlanResult } from "./plan-catalog.js";
export type { NewToken, TokenRecord, TokenRegistry, TokenRole, TokenScope } from "./token-registry.js";

/** The parts of the store together, as the dispatcher and the API use them. */
export interface Store
  extends ProjectCatalog, PlanCatalog, FunctionCatalog, TaskQueue, TaskReads, CallbackOutbox, TokenRegistry {
  close(): Promise<void>;
}

/**
 * The database cannot be reached (restarting, connection dropped). The call may succeed once it is
 * back; a change whose commit was cut off may or may not have been made.
 */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the database is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = "StoreUnavailableError";
  }
}

/**
 * The database refuses writes: the disk holding it is full, or it (or its directory) is read-only.
 * The refused change was rolled back whole; writes work again once space is freed or the directory is
 * writable. Callers that retry an unavailable store retry this too.
 */
export class StoreWriteRefusedError extends StoreUnavailableError {
  constructor(
    readonly reason: "full" | "read_only",
    cause: unknown,
  ) {
    super(cause);
    this.name = "StoreWriteRefusedError";
    this.message =
      reason === "full"
        ? "the disk holding the data directory is full: nothing was written; free some space and retry"
        : "the data directory is read-only: nothing was written; make it writable and retry";
  }
}
