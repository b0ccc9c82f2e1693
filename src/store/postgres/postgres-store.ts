/**
 * The distributed `Store`: PostgreSQL through a `pg.Pool`, shared by every node. Each call is one
 * statement or one transaction; claims use `FOR UPDATE SKIP LOCKED` so nodes never start the same task.
 */
import type { Lane } from "../../domain/lane.js";
import pg from "pg";
import { defaultSettings, type FunctionSettings } from "../../domain/function-settings.js";
import type { Failure, Progress, Task } from "../../domain/task.js";
import type {
  AttemptEnd,
  ClaimedTask,
  ClaimOptions,
  DeployInput,
  DeployResult,
  DueCallback,
  EnqueueResult,
  FunctionRecord,
  NewTask,
  RevisionRecord,
  Store,
  TaskPage,
  TaskQuery,
} from "../store.js";
import { Announcer, channelOf } from "./announcements.js";
import { migrations } from "./migrations/index.js";
import {
  appendAttemptSql,
  insertTasks,
  selectFunction,
  selectFunctionSql,
  taskColumns,
  toBuffer,
  toStoredAttempt,
  type Queryable,
} from "./statements.js";
import { rethrowUnavailable } from "./unavailable.js";
import {
  decodeCursor,
  distinctLanes,
  encodeCursor,
  logTruncatedMarker,
  toFunctionRecord,
  toRevisionRecord,
  toTask,
  type FunctionRow,
  type LaneRow,
  type RevisionRow,
  type StoredAttempt,
  type TaskRow,
} from "../rows.js";

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`. */
  connectionString: string;
  /** Every table lives in this schema, created if missing. Default `kiln`. */
  schema?: string;
  /**
   * This node's name, the same across its restarts and unique among the nodes sharing the database:
   * each claim records it, and `recoverInterruptedTasks` touches only the tasks it claimed.
   */
  nodeId: string;
  /** A task's log is cut (and the cut marked) past this many characters. */
  maxLogChars: number;
  /** Connections in each of the two pools (durable and fast). Default 8. */
  maxConnections?: number;
  /** A connection that broke while idle (the database restarted, say); the pool replaces it. */
  onIdleConnectionError?: (error: Error) => void;
}

interface ClaimRow {
  seq: number;
  id: string;
  payload: string;
  priority: number;
  timeout_s: number;
  attempt: number;
  charged_attempts: number;
  awaited: boolean;
}

/** A running task whose attempt is recorded as `lost`. */
interface LostRow {
  id: string;
  project: string;
  function_name: string;
  revision: string;
  attempt: number;
  attempt_started_at: number | null;
  lost_attempts: number;
  awaited: boolean;
}

/** What recovering lost attempts changed, for the nodes to hear of it. */
export interface Recovery {
  lost: number;
  /** Lanes that have the lost tasks queued again. */
  lanes: Lane[];
  /** Tasks that were lost too often and failed, with a caller waiting on them. */
  ended: string[];
}

/** The database's clock in epoch milliseconds: leases are compared on one clock, not the nodes'. */
export const dbNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

const migrationLockKey = 0x6b696c6e;

/**
 * A claim reads the head of its lane from the index in claim order. Statistics taken while the queue
 * was short make sorting the whole lane look as cheap, and a burst of tasks then costs a sort of the
 * queue per claim (measured: 18 ms instead of 1 ms per claim of 16 with 27,000 queued). Sorting is what
 * a claim must never do, so it is ruled out: on the fast pool for good, here for one transaction.
 */
const beginEnqueueAndClaim = "BEGIN; SET LOCAL enable_sort = off";
const lockFunctionSql = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/** The statement with its parameters written in as literals, for a simple (multi-statement) query. */
function inlineValues({ text, values }: { text: string; values: unknown[] }): string {
  return text.replace(/\$(\d+)/g, (_, index: string) => {
    const value = values[Number(index) - 1];
    if (typeof value === "number" && Number.isFinite(value)) return String(value);
    if (typeof value === "string") return pg.escapeLiteral(value);
    throw new Error(`cannot inline parameter $${index}: ${String(value)}`);
  });
}
const schemaPattern = /^[a-z_][a-z0-9_]{0,62}$/;

export class PostgresStore implements Store {
  private readonly pool: pg.Pool;
  /**
   * Connections for claims and attempt ends, the statements on every task's path: their commits do
   * not wait for the WAL's fsync (1–2 ms here), as SQLite commits them at NORMAL. A crash of PostgreSQL
   * itself may forget the last of them (its WAL writer flushes within ~0.6 s): those tasks run again.
   * Enqueues, deploys and cancels go through `pool` and stay synchronous: their callers were told they
   * were accepted. Sorting is off here too (see `beginEnqueueAndClaim`).
   */
  private readonly fastPool: pg.Pool;
  /** The pool's `query`, with an unreachable database reported as `StoreUnavailableError`. */
  readonly db: Queryable;
  /** The same for the fast pool. */
  private readonly fastDb: Queryable;
  readonly schema: string;
  readonly nodeId: string;
  readonly announce: Announcer;
  private readonly maxLogChars: number;
  private closing: Promise<void> | null = null;

  /** Connects lazily and does not migrate: see `open`. */
  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? "kiln";
    if (!schemaPattern.test(this.schema)) throw new Error(`not a plain schema name: ${this.schema}`);
    this.nodeId = options.nodeId;
    this.maxLogChars = options.maxLogChars;
    // Epoch milliseconds and seq fit a double exactly; int8 would arrive as strings otherwise.
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, Number);
    const openPool = (name: string, settings: string) => {
      const pool = new pg.Pool({
        connectionString: options.connectionString,
        max: options.maxConnections ?? 8,
        // Names the node in pg_stat_activity.
        application_name: `kiln ${this.nodeId} ${name}`,
        // Every unqualified name in this file resolves in the store's schema.
        options: `-c search_path=${pg.escapeIdentifier(this.schema)} ${settings}`,
        types,
      });
      pool.on("error", options.onIdleConnectionError ?? (() => {}));
      const db: Queryable = {
        query: <Row extends pg.QueryResultRow>(config: pg.QueryConfig) =>
          pool.query<Row>(config).catch(rethrowUnavailable),
      };
      return [pool, db] as const;
    };
    [this.pool, this.db] = openPool("durable", "");
    [this.fastPool, this.fastDb] = openPool("fast", "-c synchronous_commit=off -c enable_sort=off");
    this.announce = new Announcer(this.db, channelOf(this.schema), this.nodeId);
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
  async migrate(): Promise<void> {
    await this.transaction(async (db) => {
      await db.query({ text: "SELECT pg_advisory_xact_lock($1)", values: [migrationLockKey] });
      const { rowCount } = await db.query({
        text: "SELECT 1 FROM pg_namespace WHERE nspname = $1",
        values: [this.schema],
      });
      // Checked first: an operator may create the schema for a role that cannot create schemas.
      if (rowCount === 0) await db.query({ text: `CREATE SCHEMA ${pg.escapeIdentifier(this.schema)}` });
      await db.query({
        text: `CREATE TABLE IF NOT EXISTS kiln_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      });
      const { rows } = await db.query<{ version: number | null }>({
        text: "SELECT max(version) AS version FROM kiln_migrations",
      });
      const applied = rows[0]?.version ?? 0;
      for (const [index, migration] of migrations.entries()) {
        if (index < applied) continue;
        await db.query({ text: migration.up });
        await db.query({
          text: "INSERT INTO kiln_migrations (version, name) VALUES ($1, $2)",
          values: [index + 1, migration.name],
        });
      }
    });
  }

  async ensureProject(name: string, now: Date): Promise<void> {
    // $1 name, $2 now (epoch ms)
    await this.db.query({
      text: "INSERT INTO projects (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
      values: [name, now.getTime()],
    });
  }

  async hasProject(name: string): Promise<boolean> {
    const { rowCount } = await this.db.query({
      text: "SELECT 1 FROM projects WHERE name = $1",
      values: [name],
    });
    return rowCount !== 0;
  }

  deployRevision(input: DeployInput): Promise<DeployResult> {
    return this.transaction(async (db) => {
      const now = input.now.getTime();
      // $1 project, $2 function: deploys of one function take turns, so each merges its settings over
      // the previous one's (a row lock would not cover the first deploy, when there is no row yet).
      await db.query({
        text: "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
        values: [input.project, input.name],
      });
      const existing = await selectFunction(db, input.project, input.name);
      // $1 digest, $2 the archive bytes
      await db.query({
        text: "INSERT INTO archives (digest, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        values: [input.digest, toBuffer(input.archive)],
      });
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
    return selectFunction(this.db, project, name);
  }

  async listFunctions(project: string): Promise<FunctionRecord[]> {
    // $1 project
    const { rows } = await this.db.query<FunctionRow>({
      text: `${selectFunctionSql} WHERE f.project = $1 ORDER BY f.name`,
      values: [project],
    });
    return rows.map(toFunctionRecord);
  }

  async listWarmFunctions(): Promise<FunctionRecord[]> {
    // Filtered here, not with settings::jsonb: jsonb rejects the \u0000 escape an env value may hold,
    // and one such function would fail every node's start. Called once per start, over all functions.
    const { rows } = await this.db.query<FunctionRow>({
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
    return this.transaction(async (db) => {
      // $1 project, $2 function, $3 settings JSON, $4 now
      const { rowCount } = await db.query({
        text: "UPDATE functions SET settings = $3, updated_at = $4 WHERE project = $1 AND name = $2",
        values: [project, name, JSON.stringify(settings), now.getTime()],
      });
      // Read by a later statement: its snapshot sees a revision that a deploy we waited for committed.
      return rowCount === 0 ? null : selectFunction(db, project, name);
    });
  }

  async listRevisions(project: string, name: string): Promise<RevisionRecord[]> {
    // $1 project, $2 function
    const { rows } = await this.db.query<RevisionRow>({
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
    return this.transaction(async (db) => {
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
    const { rows } = await this.db.query<{ data: Buffer }>({
      text: "SELECT data FROM archives WHERE digest = $1",
      values: [digest],
    });
    return rows[0]?.data ?? null;
  }

  async enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    // One INSERT is one commit: the existing tasks of repeated keys are read after it, and they are
    // committed tasks that nothing deletes.
    if (tasks.length === 0) return [];
    const results = await insertTasks(this.db, tasks);
    this.announceQueued(results);
    return results;
  }

  /** Tells the other nodes of the lanes that new tasks joined without being claimed. */
  private announceQueued(results: EnqueueResult[]): void {
    const queued = results.filter(({ task, created }) => created && task.state === "queued");
    if (queued.length === 0) return;
    const lanes = queued.map(({ task }) => ({
      project: task.project,
      function_name: task.functionName,
      revision: task.revision,
    }));
    this.announce.lanes(distinctLanes(lanes));
  }

  async enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: { lane: Lane; limit: number; now: Date; maxConcurrency?: number },
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    const outcome = await this.transaction(async (db) => {
      const results = tasks.length === 0 ? [] : await insertTasks(db, tasks);
      const claimed = await this.claim(db, claim.lane, claim.limit, claim.now, {
        maxConcurrency: claim.maxConcurrency,
      });
      const started = new Map(claimed.map((task) => [task.id, task]));
      for (const { task } of results) {
        const start = started.get(task.id);
        if (start === undefined) continue;
        task.state = "running";
        task.startedAt ??= start.startedAt;
        task.startLatencyMs ??= Math.max(0, start.startedAt.getTime() - task.runAt.getTime());
      }
      return { results, claimed };
    }, beginEnqueueAndClaim);
    this.announceQueued(outcome.results);
    return outcome;
  }

  claimTasks(lane: Lane, limit: number, now: Date, options: ClaimOptions = {}): Promise<ClaimedTask[]> {
    if (limit <= 0) return Promise.resolve([]);
    return this.claim(null, lane, limit, now, options);
  }

  /**
   * Claims with `enable_sort = off`: inside the transaction of `db`, or on its own on the fast pool.
   * With a `maxConcurrency`, claims of one function take turns on an advisory lock from their count of
   * running tasks to their commit, so each counts the tasks the ones before it started: two nodes
   * cannot both take the last free slot.
   */
  private async claim(
    db: pg.PoolClient | null,
    lane: Lane,
    limit: number,
    now: Date,
    { order = "priority", maxConcurrency = 0 }: ClaimOptions,
  ): Promise<ClaimedTask[]> {
    if (limit <= 0) return [];
    const functionKey = `${lane.project}/${lane.functionName}`;
    // $1 project, $2 function, $3 revision, $4 limit, $5 now (epoch ms), $6 this node, $7 maxConcurrency
    // (0: none; the running count is only read when there is one).
    // Locking: the subquery locks the rows it picks (FOR UPDATE) and passes over rows another claimer
    // has locked (SKIP LOCKED), so concurrent claimers never wait on each other; a row another claimer
    // took and committed after this statement's snapshot is re-read when locked, fails state = 'queued'
    // and is dropped. So every task is started by exactly one claim, whatever the number of nodes.
    const statement = {
      name: `kiln_claim_${order}`,
      text: `UPDATE tasks
               SET state = 'running', attempt = attempt + 1, attempt_started_at = $5, node_id = $6,
                   started_at = coalesce(started_at, $5),
                   start_latency_ms = coalesce(start_latency_ms, greatest(0, $5 - run_at))
               WHERE seq IN (
                 SELECT seq FROM tasks
                 WHERE state = 'queued' AND project = $1 AND function_name = $2 AND revision = $3
                 ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"}
                 LIMIT CASE WHEN $7 > 0 THEN greatest(0, least($4, $7 - (
                   SELECT count(*) FROM tasks WHERE state = 'running' AND project = $1 AND function_name = $2)))
                 ELSE $4 END
                 FOR UPDATE SKIP LOCKED)
               RETURNING seq, id, payload, priority, timeout_s, attempt, charged_attempts, awaited`,
      values: [
        lane.project,
        lane.functionName,
        lane.revision,
        limit,
        now.getTime(),
        this.nodeId,
        maxConcurrency,
      ],
    };
    // $1 the function
    const lock = { name: "kiln_lock_function", text: lockFunctionSql, values: [functionKey] };
    let rows: ClaimRow[];
    if (maxConcurrency === 0) {
      rows = (await (db ?? this.fastDb).query<ClaimRow>(statement)).rows;
    } else if (db !== null) {
      await db.query(lock);
      rows = (await db.query<ClaimRow>(statement)).rows;
    } else {
      // One round trip: the statements of one simple query run as one transaction, so the lock is held
      // while PostgreSQL runs them rather than across round trips to this node.
      const results = (await this.fastPool
        .query(`${inlineValues(lock)}; ${inlineValues(statement)}`)
        .catch(rethrowUnavailable)) as unknown as pg.QueryResult<ClaimRow>[];
      rows = results[1]?.rows ?? [];
    }
    const awaited = rows.filter((row) => row.awaited).map((row) => row.id);
    if (awaited.length > 0) this.announce.started(awaited);
    rows.sort((a, b) => (order === "priority" ? b.priority - a.priority : 0) || a.seq - b.seq);
    return rows.map((row) => ({
      id: row.id,
      lane,
      payload: row.payload,
      priority: row.priority as ClaimedTask["priority"],
      timeoutS: row.timeout_s,
      attempt: row.attempt,
      chargedAttempts: row.charged_attempts,
      startedAt: now,
    }));
  }

  async finishAttempts(ends: AttemptEnd[]): Promise<void> {
    // A second end of the same attempt would be fenced off once the first is recorded: drop it here,
    // since one UPDATE applies at most one of them. Sorted by task so that concurrent batches that
    // share a task lock its row in the same order and cannot deadlock.
    const unique = new Map<string, AttemptEnd>();
    for (const end of ends) {
      const key = `${end.taskId}\u0000${end.attempt}`;
      if (!unique.has(key)) unique.set(key, end);
    }
    const batch = [...unique.values()].sort((a, b) =>
      a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0,
    );
    if (batch.length === 0) return;
    const final = batch.map((end) => end.next.state !== "delayed");
    // $1..$11 one array element per end; $12 the log limit in characters, $13 the truncation marker.
    // $14 this node. Fencing: an end applies only while its attempt is the task's running one, claimed
    // by this node. Every claim increments the attempt number, so an end from a node whose lease expired
    // (its task was claimed again) matches nothing; the node is checked too because a claim whose commit
    // PostgreSQL forgot in a crash (see `fastPool`) may see its attempt number handed out again.
    const { rows } = await this.fastDb.query<{ id: string }>({
      name: "kiln_finish_attempts",
      text: `UPDATE tasks t
             SET state = e.state, run_at = coalesce(e.run_at, t.run_at), finished_at = e.finished_at,
                 result = e.result, failure = e.failure, attempt_started_at = NULL,
                 attempts = ${appendAttemptSql("t.attempts", "e.attempt_json")},
                 charged_attempts = t.charged_attempts + e.charged,
                 callback_state = CASE WHEN e.final AND t.callback_url IS NOT NULL THEN 'pending' ELSE t.callback_state END,
                 callback_next_at = CASE WHEN e.final AND t.callback_url IS NOT NULL THEN e.finished_at ELSE t.callback_next_at END,
                 log = CASE
                   WHEN length(t.log) > $12 THEN t.log
                   WHEN length(t.log) + length(e.log) > $12 THEN substr(t.log || e.log, 1, $12) || $13
                   ELSE t.log || e.log END
             FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                         $8::text[], $9::int[], $10::boolean[], $11::text[])
                    AS e(task_id, attempt, state, run_at, finished_at, result, failure, attempt_json, charged, final, log)
             WHERE t.id = e.task_id AND t.state = 'running' AND t.attempt = e.attempt AND t.node_id = $14
             RETURNING CASE WHEN e.final AND t.awaited THEN t.id END AS id`,
      values: [
        batch.map((end) => end.taskId),
        batch.map((end) => end.attempt),
        batch.map((end) => end.next.state),
        batch.map((end) => (end.next.state === "delayed" ? end.next.runAt.getTime() : null)),
        batch.map((end, i) => (final[i] ? end.finishedAt.getTime() : null)),
        batch.map((end) => end.result),
        batch.map((end) => (end.failure === null ? null : JSON.stringify(end.failure))),
        batch.map((end) => JSON.stringify(toStoredAttempt(end))),
        batch.map((end) => (end.outcome === "lost" ? 0 : 1)),
        final,
        // PostgreSQL text cannot hold NUL; a log line with one keeps its length with U+FFFD instead.
        batch.map((end) => end.log.replaceAll("\u0000", "\uFFFD")),
        this.maxLogChars,
        logTruncatedMarker,
        this.nodeId,
      ],
    });
    const ended = rows.flatMap((row) => (row.id === null ? [] : [row.id]));
    if (ended.length > 0) this.announce.ended(ended);
  }

  async updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void> {
    // $1 progress JSON, $2 task, $3 attempt (fenced like an attempt's end)
    await this.db.query({
      name: "kiln_update_progress",
      text: "UPDATE tasks SET progress = $1 WHERE id = $2 AND state = 'running' AND attempt = $3",
      values: [JSON.stringify(progress), taskId, attempt],
    });
  }

  async releaseDueTasks(now: Date): Promise<Lane[]> {
    // $1 now. Two nodes releasing at once: the second waits for the first's row locks, re-reads the
    // rows as queued and skips them, so each lane is named by one of them.
    const { rows } = await this.db.query<LaneRow>({
      name: "kiln_release_due_tasks",
      text: `UPDATE tasks SET state = 'queued' WHERE state = 'delayed' AND run_at <= $1
               RETURNING project, function_name, revision`,
      values: [now.getTime()],
    });
    return distinctLanes(rows);
  }

  async nextRunAt(): Promise<Date | null> {
    const { rows } = await this.db.query<{ next: number | null }>({
      text: "SELECT min(run_at) AS next FROM tasks WHERE state = 'delayed'",
    });
    return rows[0]?.next == null ? null : new Date(rows[0].next);
  }

  async listReadyLanes(): Promise<Lane[]> {
    const { rows } = await this.db.query<LaneRow>({
      text: "SELECT DISTINCT project, function_name, revision FROM tasks WHERE state = 'queued'",
    });
    return distinctLanes(rows);
  }

  async recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    // $1 this node: the other nodes' running tasks are theirs to finish (or, once their lease has
    // expired, anyone's to recover: see `recoverExpiredLeases`).
    const recovery = await this.loseRunningTasks(
      "node_id = $1",
      [this.nodeId],
      now,
      maxLostAttempts,
      "the node running this attempt stopped before it finished",
    );
    return recovery.lost;
  }

  /**
   * Ends as `lost` the attempts running on nodes whose lease has expired (by the database's clock):
   * those nodes died, or lost the database for longer than a lease. Their tasks are queued again.
   */
  recoverExpiredLeases(now: Date, maxLostAttempts: number): Promise<Recovery> {
    // $1 this node, which is alive since it is asking
    return this.loseRunningTasks(
      `node_id IN (SELECT id FROM nodes WHERE lease_expires_at <= ${dbNowMs} AND id <> $1)`,
      [this.nodeId],
      now,
      maxLostAttempts,
      "the node running this attempt stopped renewing its lease",
    );
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
    // $1 this node, $2 claimed before (epoch ms), $3 the tasks it knows
    return this.loseRunningTasks(
      "node_id = $1 AND attempt_started_at < $2 AND NOT (id = ANY($3::text[]))",
      [this.nodeId, claimedBefore.getTime(), known],
      now,
      maxLostAttempts,
      "the node running this attempt lost track of it (its claim or its end was cut off by the database)",
    );
  }

  /** Records the running attempts that `condition` selects as lost: retried, or failed if lost too often. */
  private async loseRunningTasks(
    condition: string,
    values: unknown[],
    now: Date,
    maxLostAttempts: number,
    message: string,
  ): Promise<Recovery> {
    const recovery = await this.transaction(async (db): Promise<Recovery> => {
      // Rows another node is recovering (or finishing) right now are skipped: theirs to record.
      const { rows: running } = await db.query<LostRow>({
        text: `SELECT id, project, function_name, revision, attempt, attempt_started_at, lost_attempts, awaited
                 FROM tasks WHERE state = 'running' AND ${condition} ORDER BY id FOR UPDATE SKIP LOCKED`,
        values,
      });
      if (running.length === 0) return { lost: 0, lanes: [], ended: [] };
      const failure: Failure = { kind: "lost", message, retryable: true };
      const exhausted = running.map((task) => task.lost_attempts + 1 >= maxLostAttempts);
      const exhaustedFailure = JSON.stringify({
        ...failure,
        message: `lost ${maxLostAttempts} times; not run again`,
        retryable: false,
      });
      // $1..$3 one array element per task; $4 now, $5 the failure of a task lost too often
      await db.query({
        text: `UPDATE tasks t
               SET state = CASE WHEN e.exhausted THEN 'failed' ELSE 'queued' END,
                   finished_at = CASE WHEN e.exhausted THEN $4::bigint END,
                   failure = CASE WHEN e.exhausted THEN $5 END,
                   attempt_started_at = NULL,
                   callback_state = CASE WHEN e.exhausted AND t.callback_url IS NOT NULL THEN 'pending' ELSE t.callback_state END,
                   callback_next_at = CASE WHEN e.exhausted THEN $4::bigint ELSE t.callback_next_at END,
                   lost_attempts = t.lost_attempts + 1,
                   attempts = ${appendAttemptSql("t.attempts", "e.attempt_json")}
               FROM unnest($1::text[], $2::boolean[], $3::text[]) AS e(id, exhausted, attempt_json)
               WHERE t.id = e.id`,
        values: [
          running.map((task) => task.id),
          exhausted,
          running.map((task) =>
            JSON.stringify({
              number: task.attempt,
              startedAt: task.attempt_started_at ?? now.getTime(),
              finishedAt: now.getTime(),
              outcome: "lost",
              failure,
            } satisfies StoredAttempt),
          ),
          now.getTime(),
          exhaustedFailure,
        ],
      });
      return {
        lost: running.length,
        lanes: distinctLanes(running.filter((_, i) => !exhausted[i])),
        ended: running.filter((task, i) => exhausted[i] && task.awaited).map((task) => task.id),
      };
    });
    if (recovery.lanes.length > 0) this.announce.lanes(recovery.lanes);
    if (recovery.ended.length > 0) this.announce.ended(recovery.ended);
    return recovery;
  }

  async cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now
    const { rows } = await this.db.query<TaskRow & { awaited: boolean }>({
      text: `UPDATE tasks SET state = 'cancelled', finished_at = $3,
               callback_state = CASE WHEN callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
               callback_next_at = CASE WHEN callback_url IS NOT NULL THEN $3 ELSE callback_next_at END
             WHERE project = $1 AND id = $2 AND state IN ('queued', 'delayed')
             RETURNING ${taskColumns}, awaited`,
      values: [project, id, now.getTime()],
    });
    if (rows[0]?.awaited === true) this.announce.ended([id]);
    // Not pending: read it again, since a node that just claimed it committed after this statement began.
    return rows[0] === undefined ? this.getTask(project, id) : toTask(rows[0]);
  }

  async requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now
    const { rows } = await this.db.query<TaskRow>({
      text: `UPDATE tasks
               SET state = 'queued', run_at = $3, finished_at = NULL, result = NULL, failure = NULL,
                   progress = NULL, charged_attempts = 0, lost_attempts = 0,
                   callback_state = NULL, callback_attempts = 0, callback_next_at = NULL
             WHERE project = $1 AND id = $2
               AND state IN ('succeeded', 'failed', 'timed_out', 'out_of_memory', 'cancelled')
             RETURNING ${taskColumns}`,
      values: [project, id, now.getTime()],
    });
    // Not finished: read it again, as it is now rather than as this statement's snapshot saw it.
    return rows[0] === undefined ? this.getTask(project, id) : toTask(rows[0]);
  }

  async claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]> {
    // $1 now, $2 limit, $3 when the callback is due again if this delivery never reports back.
    // SKIP LOCKED: nodes claiming at once take different callbacks.
    const { rows } = await this.db.query<TaskRow & { callback_url: string }>({
      text: `UPDATE tasks SET callback_next_at = $3
               WHERE seq IN (SELECT seq FROM tasks WHERE callback_state = 'pending' AND callback_next_at <= $1
                             ORDER BY callback_next_at LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING ${taskColumns}`,
      values: [now.getTime(), limit, now.getTime() + leaseMs],
    });
    rows.sort((a, b) => a.seq - b.seq);
    return rows.map((row) => ({ task: toTask(row), url: row.callback_url, attempts: row.callback_attempts }));
  }

  async nextCallbackAt(): Promise<Date | null> {
    const { rows } = await this.db.query<{ next: number | null }>({
      text: "SELECT min(callback_next_at) AS next FROM tasks WHERE callback_state = 'pending'",
    });
    return rows[0]?.next == null ? null : new Date(rows[0].next);
  }

  async recordCallbackAttempt(
    taskId: string,
    outcome: { delivered: boolean; retryAt: Date | null },
  ): Promise<void> {
    const state = outcome.delivered ? "delivered" : outcome.retryAt === null ? "failed" : "pending";
    // $1 new callback state, $2 next try (epoch ms) or null, $3 task
    await this.db.query({
      text: `UPDATE tasks SET callback_state = $1, callback_attempts = callback_attempts + 1, callback_next_at = $2
               WHERE id = $3 AND callback_state = 'pending'`,
      values: [state, outcome.retryAt?.getTime() ?? null, taskId],
    });
  }

  async getTask(project: string, id: string): Promise<Task | null> {
    // $1 project, $2 task
    const { rows } = await this.db.query<TaskRow>({
      name: "kiln_get_task",
      text: `SELECT ${taskColumns} FROM tasks WHERE project = $1 AND id = $2`,
      values: [project, id],
    });
    return rows[0] === undefined ? null : toTask(rows[0]);
  }

  async watchTask(project: string, id: string): Promise<Task | null> {
    // $1 project, $2 task. The SELECT reads the row as it was when the statement began: the UPDATE
    // changes only the flag.
    const { rows } = await this.db.query<TaskRow>({
      name: "kiln_watch_task",
      text: `WITH watched AS (UPDATE tasks SET awaited = true WHERE project = $1 AND id = $2 AND NOT awaited)
             SELECT ${taskColumns} FROM tasks WHERE project = $1 AND id = $2`,
      values: [project, id],
    });
    return rows[0] === undefined ? null : toTask(rows[0]);
  }

  async listTasks(query: TaskQuery): Promise<TaskPage> {
    const values: unknown[] = [query.project, query.limit + 1];
    // $1 project, $2 page size + 1 (to learn whether a next page exists), then one per filter
    const conditions = ["project = $1"];
    const filter = (column: string, operator: string, value: unknown) => {
      values.push(value);
      conditions.push(`${column} ${operator} $${values.length}`);
    };
    if (query.functionName !== undefined) filter("function_name", "=", query.functionName);
    if (query.state !== undefined) filter("state", "=", query.state);
    if (query.label !== undefined) filter("label", "=", query.label);
    if (query.cursor !== undefined) filter("seq", "<", decodeCursor(query.cursor));
    const { rows } = await this.db.query<TaskRow>({
      text: `SELECT ${taskColumns} FROM tasks WHERE ${conditions.join(" AND ")} ORDER BY seq DESC LIMIT $2`,
      values,
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      tasks: page.map(toTask),
      nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last.seq) : null,
    };
  }

  async getTaskLog(project: string, id: string): Promise<string | null> {
    const { rows } = await this.db.query<{ log: string }>({
      text: "SELECT log FROM tasks WHERE project = $1 AND id = $2",
      values: [project, id],
    });
    return rows[0]?.log ?? null;
  }

  /** Ends the pool once; later calls wait for the same end. Drops nothing. */
  close(): Promise<void> {
    this.closing ??= this.announce
      .flush()
      .then(() => Promise.all([this.pool.end(), this.fastPool.end()]))
      .then(() => {});
    return this.closing;
  }

  /** Runs `work` in one transaction on one connection: committed if it resolves, rolled back if not. */
  async transaction<T>(
    work: (db: pg.PoolClient) => Promise<T>,
    begin = "BEGIN",
    pool = this.pool,
  ): Promise<T> {
    const client = await pool.connect().catch(rethrowUnavailable);
    // The pool listens for errors of idle connections only: one that breaks between two statements
    // of this transaction must not become an uncaught exception. Its next query fails instead.
    const ignore = () => {};
    client.on("error", ignore);
    const release = (broken?: Error | boolean) => {
      client.removeListener("error", ignore);
      client.release(broken);
    };
    try {
      await client.query(begin);
      const result = await work(client);
      await client.query("COMMIT");
      release();
      return result;
    } catch (error) {
      // A connection whose rollback fails is in an unknown state: destroy it rather than pool it.
      await client.query("ROLLBACK").then(
        () => release(),
        (rollbackError: unknown) => release(rollbackError instanceof Error ? rollbackError : true),
      );
      return rethrowUnavailable(error);
    }
  }
}
