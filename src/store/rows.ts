/**
 * Rows of the store's tables as both adapters read them (SQLite and PostgreSQL share the columns), and
 * their mapping to the port's records.
 */
import type { Lane } from "../domain/lane.js";
import { KilnError } from "../domain/errors.js";
import { defaultSettings, type FunctionSettings, type RevisionSpec } from "../domain/function-settings.js";
import { noLimits, type PlanLimits } from "../domain/plan.js";
import type { Attempt, Failure, Priority, Progress, Task, TaskState } from "../domain/task.js";
import type {
  ClaimedTask,
  EnqueueResult,
  FunctionRecord,
  NewTask,
  PlanRecord,
  ProjectRecord,
  RevisionRecord,
  TokenRecord,
  TokenScope,
} from "./store.js";

/** Where a task's log was cut at its size limit. */
export const logTruncatedMarker = "\n[kiln: log truncated]\n";

/** A `tasks` row as both adapters read it: times in epoch milliseconds, JSON columns as text. */
export interface TaskRow {
  seq: number;
  id: string;
  project: string;
  function_name: string;
  revision: string;
  state: TaskState;
  priority: number;
  payload: string;
  label: string | null;
  idempotency_key: string | null;
  timeout_s: number;
  created_at: number;
  run_at: number;
  started_at: number | null;
  finished_at: number | null;
  start_latency_ms: number | null;
  attempt: number;
  attempt_started_at: number | null;
  lost_attempts: number;
  attempts: string;
  result: string | null;
  failure: string | null;
  progress: string | null;
  callback_url: string | null;
}

/** Attempts as stored in the `attempts` JSON array: times in epoch milliseconds. */
export interface StoredAttempt {
  number: number;
  startedAt: number;
  finishedAt: number;
  outcome: Attempt["outcome"];
  failure?: Failure;
}

const toDate = (ms: number | null) => (ms === null ? null : new Date(ms));

export function toTask(row: TaskRow): Task {
  const attempts = (JSON.parse(row.attempts) as StoredAttempt[]).map((attempt) => ({
    ...attempt,
    startedAt: new Date(attempt.startedAt),
    finishedAt: new Date(attempt.finishedAt),
  }));
  return {
    id: row.id,
    project: row.project,
    functionName: row.function_name,
    revision: row.revision,
    state: row.state,
    priority: row.priority as Priority,
    payload: JSON.parse(row.payload) as unknown,
    label: row.label,
    idempotencyKey: row.idempotency_key,
    timeoutS: row.timeout_s,
    createdAt: new Date(row.created_at),
    runAt: new Date(row.run_at),
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    startLatencyMs: row.start_latency_ms,
    attempts,
    lostAttempts: row.lost_attempts,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    failure: row.failure === null ? null : (JSON.parse(row.failure) as Failure),
    progress: row.progress === null ? null : (JSON.parse(row.progress) as Progress),
  };
}

/** A task as it is once inserted, without reading it back. */
export function newTaskRecord(task: NewTask): Task {
  return {
    id: task.id,
    project: task.project,
    functionName: task.functionName,
    revision: task.revision,
    state: task.runAt > task.createdAt ? "delayed" : "queued",
    priority: task.priority,
    payload: JSON.parse(task.payload) as unknown,
    label: task.label,
    idempotencyKey: task.idempotencyKey,
    timeoutS: task.timeoutS,
    createdAt: task.createdAt,
    runAt: task.runAt,
    startedAt: null,
    finishedAt: null,
    startLatencyMs: null,
    attempts: [],
    lostAttempts: 0,
    result: null,
    failure: null,
    progress: null,
  };
}

export interface FunctionRow {
  project: string;
  name: string;
  current_revision: string;
  settings: string;
  spec: string;
  created_at: number;
  updated_at: number;
}

export interface RevisionRow {
  digest: string;
  spec: string;
  size_bytes: number;
  created_at: number;
}

export interface LaneRow {
  project: string;
  function_name: string;
  revision: string;
}

export function toFunctionRecord(row: FunctionRow): FunctionRecord {
  return {
    project: row.project,
    name: row.name,
    currentRevision: row.current_revision,
    spec: JSON.parse(row.spec) as RevisionSpec,
    // Settings written before a setting existed take its default.
    settings: { ...defaultSettings, ...(JSON.parse(row.settings) as Partial<FunctionSettings>) },
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

export function toRevisionRecord(row: RevisionRow): RevisionRecord {
  return {
    digest: row.digest,
    spec: JSON.parse(row.spec) as RevisionSpec,
    sizeBytes: row.size_bytes,
    createdAt: new Date(row.created_at),
  };
}

export interface ProjectRow {
  name: string;
  description: string;
  plan: string | null;
  created_at: number;
  updated_at: number;
}

export function toProjectRecord(row: ProjectRow): ProjectRecord {
  return {
    name: row.name,
    description: row.description,
    plan: row.plan,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

export interface PlanRow {
  name: string;
  limits: string;
  created_at: number;
  updated_at: number;
}

/** A limit a row written by an older version does not have is not set. */
export function toPlanRecord(row: PlanRow): PlanRecord {
  const stored = JSON.parse(row.limits) as Partial<Record<keyof PlanLimits, unknown>>;
  const limits = { ...noLimits };
  for (const key of Object.keys(noLimits) as (keyof PlanLimits)[]) {
    const value = stored[key];
    limits[key] = typeof value === "number" ? value : null;
  }
  return { name: row.name, limits, createdAt: new Date(row.created_at), updatedAt: new Date(row.updated_at) };
}

/** A `tokens` row without its digest: `project` is null (and `role` 'admin') for an admin token. */
export interface TokenRow {
  id: string;
  name: string;
  project: string | null;
  role: "admin" | "deploy" | "run" | "read";
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** The columns of `tokens` a `TokenRow` is read from. */
export const tokenColumns = "id, name, project, role, created_at, expires_at, last_used_at, revoked_at";

export function toTokenRecord(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    scope:
      row.project === null || row.role === "admin"
        ? { kind: "admin" }
        : { kind: "project", project: row.project, role: row.role },
    createdAt: new Date(row.created_at),
    expiresAt: toDate(row.expires_at),
    lastUsedAt: toDate(row.last_used_at),
    revokedAt: toDate(row.revoked_at),
  };
}

/** A scope as the `project` and `role` columns hold it. */
export function tokenColumnsOf(scope: TokenScope): { project: string | null; role: TokenRow["role"] } {
  return scope.kind === "admin"
    ? { project: null, role: "admin" }
    : { project: scope.project, role: scope.role };
}

export function distinctLanes(rows: LaneRow[]): Lane[] {
  const lanes = new Map<string, Lane>();
  for (const row of rows) {
    const lane = { project: row.project, functionName: row.function_name, revision: row.revision };
    lanes.set(`${lane.project}\u0000${lane.functionName}\u0000${lane.revision}`, lane);
  }
  return [...lanes.values()];
}

export function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString("base64url");
}

export function decodeCursor(cursor: string): number {
  const match = /^seq:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (match?.[1] === undefined)
    throw new KilnError("BAD_REQUEST", "the cursor is not one a task list returned");
  return Number(match[1]);
}

/** The tasks an enqueue-and-claim returns show those it claimed in the same commit as `running`. */
export function showClaimedAsRunning(results: EnqueueResult[], claimed: ClaimedTask[]): void {
  const started = new Map(claimed.map((task) => [task.id, task]));
  for (const { task } of results) {
    const start = started.get(task.id);
    if (start === undefined) continue;
    task.state = "running";
    task.startedAt ??= start.startedAt;
    task.startLatencyMs ??= Math.max(0, start.startedAt.getTime() - task.runAt.getTime());
  }
}
