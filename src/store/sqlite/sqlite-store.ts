/** The embedded `Store`: better-sqlite3 in WAL mode, with group commit for writes. */
import Database from "better-sqlite3";
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
  Lane,
  NewTask,
  RevisionRecord,
  Store,
  TaskPage,
  TaskQuery,
} from "../store.js";
import { GroupCommit } from "./group-commit.js";
import { writeNow } from "./sqlite-errors.js";
import { migrations } from "./migrations/index.js";
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

export interface SqliteStoreOptions {
  /** A file path, or ":memory:" for tests. */
  path: string;
  /** A task's log is cut (and the cut marked) past this many characters. */
  maxLogChars: number;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly commits: GroupCommit;
  private readonly maxLogChars: number;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(options: SqliteStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    this.commits = new GroupCommit(this.db);
    this.maxLogChars = options.maxLogChars;
  }

  /** Prepared once per SQL text: preparing costs more than running most of these statements. */
  private sql<Params extends unknown[] = unknown[], Row = unknown>(
    text: string,
  ): Database.Statement<Params, Row> {
    let statement = this.statements.get(text);
    if (statement === undefined) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement as Database.Statement<Params, Row>;
  }

  private migrate(): void {
    const applied = this.db.pragma("user_version", { simple: true }) as number;
    migrations.slice(applied).forEach((migration, index) => {
      this.db.transaction(() => {
        this.db.exec(migration.up);
        this.db.pragma(`user_version = ${applied + index + 1}`);
      })();
    });
  }

  ensureProject(name: string, now: Date): Promise<void> {
    return this.commits.write(() => {
      this.sql("INSERT INTO projects (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING").run(
        name,
        now.getTime(),
      );
    }, true);
  }

  hasProject(name: string): Promise<boolean> {
    return Promise.resolve(this.sql("SELECT 1 FROM projects WHERE name = ?").get(name) !== undefined);
  }

  deployRevision(input: DeployInput): Promise<DeployResult> {
    return this.commits.write(() => {
      const now = input.now.getTime();
      const existing = this.selectFunction(input.project, input.name);
      this.sql("INSERT INTO archives (digest, data) VALUES (?, ?) ON CONFLICT DO NOTHING").run(
        input.digest,
        input.archive,
      );
      this.sql(
        `INSERT INTO revisions (project, function_name, digest, spec, size_bytes, created_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ).run(input.project, input.name, input.digest, JSON.stringify(input.spec), input.archive.length, now);
      const settings: FunctionSettings = {
        ...(existing?.settings ?? defaultSettings),
        ...input.settings,
        env: { ...existing?.settings.env, ...input.settings.env },
      };
      this.sql(
        `INSERT INTO functions (project, name, current_revision, settings, created_at, updated_at)
           VALUES (@project, @name, @digest, @settings, @now, @now)
           ON CONFLICT (project, name) DO UPDATE
             SET current_revision = @digest, settings = @settings, updated_at = @now`,
      ).run({
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
    const rows = this.sql<[string], FunctionRow>(
      `${selectFunctionSql} WHERE f.project = ? ORDER BY f.name`,
    ).all(project);
    return Promise.resolve(rows.map(toFunctionRecord));
  }

  listWarmFunctions(): Promise<FunctionRecord[]> {
    const rows = this.sql<[], FunctionRow>(
      `${selectFunctionSql} WHERE json_extract(f.settings, '$.minWarm') > 0 ORDER BY f.project, f.name`,
    ).all();
    return Promise.resolve(rows.map(toFunctionRecord));
  }

  updateFunctionSettings(
    project: string,
    name: string,
    settings: FunctionSettings,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.commits.write(() => {
      this.sql("UPDATE functions SET settings = ?, updated_at = ? WHERE project = ? AND name = ?").run(
        JSON.stringify(settings),
        now.getTime(),
        project,
        name,
      );
      return this.selectFunction(project, name);
    }, true);
  }

  listRevisions(project: string, name: string): Promise<RevisionRecord[]> {
    const rows = this.sql<[string, string], RevisionRow>(
      `SELECT digest, spec, size_bytes, created_at FROM revisions
         WHERE project = ? AND function_name = ? ORDER BY created_at DESC, rowid DESC`,
    ).all(project, name);
    return Promise.resolve(rows.map(toRevisionRecord));
  }

  setCurrentRevision(
    project: string,
    name: string,
    digest: string,
    now: Date,
  ): Promise<FunctionRecord | null> {
    return this.commits.write(() => {
      const changed = this.sql(
        `UPDATE functions SET current_revision = @digest, updated_at = @now
           WHERE project = @project AND name = @name
             AND EXISTS (SELECT 1 FROM revisions WHERE project = @project AND function_name = @name AND digest = @digest)`,
      ).run({ project, name, digest, now: now.getTime() });
      return changed.changes === 0 ? null : this.selectFunction(project, name);
    }, true);
  }

  getRevisionArchive(digest: string): Promise<Uint8Array | null> {
    const row = this.sql<[string], { data: Buffer }>("SELECT data FROM archives WHERE digest = ?").get(
      digest,
    );
    return Promise.resolve(row?.data ?? null);
  }

  enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    return this.commits.write(() => this.insertTasks(tasks), true);
  }

  enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: { lane: Lane; limit: number; now: Date; maxConcurrency?: number; durable?: boolean },
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    const apply = () => {
      const results = this.insertTasks(tasks);
      const claimed = this.claimNow(claim.lane, claim.limit, claim.now, {
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
    };
    // Not durable (a sync invoke): committed now, at NORMAL, without waiting for the group's turn.
    if (claim.durable === false) return writeNow(() => this.db.transaction(apply)());
    return this.commits.write(apply, true);
  }

  private insertTasks(tasks: NewTask[]): EnqueueResult[] {
    // A repeated idempotency key inserts nothing; the existing task is returned instead.
    const insert = this.sql<unknown[], TaskRow>(
      `INSERT INTO tasks (id, project, function_name, revision, state, priority, payload, label, idempotency_key,
                          timeout_s, created_at, run_at, callback_url)
       VALUES (@id, @project, @functionName, @revision, @state, @priority, @payload, @label, @idempotencyKey,
               @timeoutS, @createdAt, @runAt, @callbackUrl)
       ON CONFLICT (project, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING *`,
    );
    const selectByKey = this.sql<[string, string], TaskRow>(
      "SELECT * FROM tasks WHERE project = ? AND idempotency_key = ?",
    );
    return tasks.map((task): EnqueueResult => {
      const row = insert.get({
        ...task,
        state: task.runAt > task.createdAt ? "delayed" : "queued",
        createdAt: task.createdAt.getTime(),
        runAt: task.runAt.getTime(),
      });
      if (row !== undefined) return { task: toTask(row), created: true };
      const existing = selectByKey.get(task.project, task.idempotencyKey ?? "");
      if (existing === undefined) throw new Error(`task ${task.id} was neither inserted nor found`);
      return { task: toTask(existing), created: false };
    });
  }

  claimTasks(lane: Lane, limit: number, now: Date, options: ClaimOptions = {}): Promise<ClaimedTask[]> {
    // A claim commits at once (at NORMAL, no fsync): the dispatcher already claims for all idle
    // sandboxes of a lane in one call, and waiting for the group commit would put a turn of the event
    // loop on the path of every task's start.
    return writeNow(() => this.claimNow(lane, limit, now, options));
  }

  // One writer (this process) and synchronous statements: no two claims can interleave.
  private claimNow(
    lane: Lane,
    wanted: number,
    now: Date,
    { order = "priority", maxConcurrency = 0 }: ClaimOptions,
  ): ClaimedTask[] {
    const limit = maxConcurrency > 0 ? Math.min(wanted, maxConcurrency - this.countRunning(lane)) : wanted;
    if (limit <= 0) return [];
    const rows = this.sql<unknown[], ClaimRow>(
      `UPDATE tasks
         SET state = 'running', attempt = attempt + 1, attempt_started_at = @now,
             started_at = coalesce(started_at, @now), start_latency_ms = coalesce(start_latency_ms, max(0, @now - run_at))
         WHERE seq IN (
           SELECT seq FROM tasks
           WHERE state = 'queued' AND project = @project AND function_name = @functionName AND revision = @revision
           ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"} LIMIT @limit)
         RETURNING seq, id, payload, priority, timeout_s, attempt, charged_attempts`,
    ).all({ ...lane, limit, now: now.getTime() });
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

  private countRunning(lane: Lane): number {
    const row = this.sql<[string, string], { running: number }>(
      "SELECT count(*) AS running FROM tasks WHERE state = 'running' AND project = ? AND function_name = ?",
    ).get(lane.project, lane.functionName);
    return row?.running ?? 0;
  }

  finishAttempts(ends: AttemptEnd[]): Promise<void> {
    const update = this.sql(
      `UPDATE tasks
       SET state = @state, run_at = coalesce(@runAt, run_at), finished_at = @finishedAt,
           result = @result, failure = @failure, attempt_started_at = NULL,
           attempts = json_insert(attempts, '$[#]', json(@attemptJson)),
           charged_attempts = charged_attempts + @charged,
           callback_state = CASE WHEN @final = 1 AND callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
           callback_next_at = CASE WHEN @final = 1 AND callback_url IS NOT NULL THEN @finishedAt ELSE callback_next_at END,
           log = ${appendLogSql}
       WHERE id = @taskId AND state = 'running' AND attempt = @attempt`,
    );
    return this.commits.write(() => {
      for (const end of ends) {
        const final = end.next.state !== "delayed";
        const attempt: StoredAttempt = {
          number: end.attempt,
          startedAt: end.startedAt.getTime(),
          finishedAt: end.finishedAt.getTime(),
          outcome: end.outcome,
          ...(end.failure === null ? {} : { failure: end.failure }),
        };
        update.run({
          taskId: end.taskId,
          attempt: end.attempt,
          state: end.next.state,
          runAt: end.next.state === "delayed" ? end.next.runAt.getTime() : null,
          finishedAt: final ? end.finishedAt.getTime() : null,
          result: end.result,
          failure: end.failure === null ? null : JSON.stringify(end.failure),
          attemptJson: JSON.stringify(attempt),
          charged: end.outcome === "lost" ? 0 : 1,
          final: final ? 1 : 0,
          log: end.log,
          maxLog: this.maxLogChars,
          marker: logTruncatedMarker,
        });
      }
    }, false);
  }

  updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void> {
    return this.commits.write(() => {
      this.sql("UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running' AND attempt = ?").run(
        JSON.stringify(progress),
        taskId,
        attempt,
      );
    }, false);
  }

  releaseDueTasks(now: Date): Promise<Lane[]> {
    return writeNow(() => {
      const rows = this.sql<[number], LaneRow>(
        `UPDATE tasks SET state = 'queued' WHERE state = 'delayed' AND run_at <= ?
           RETURNING project, function_name, revision`,
      ).all(now.getTime());
      return distinctLanes(rows);
    });
  }

  nextRunAt(): Promise<Date | null> {
    const row = this.sql<[], { next: number | null }>(
      "SELECT min(run_at) AS next FROM tasks WHERE state = 'delayed'",
    ).get();
    return Promise.resolve(row?.next == null ? null : new Date(row.next));
  }

  listReadyLanes(): Promise<Lane[]> {
    const rows = this.sql<[], LaneRow>(
      "SELECT DISTINCT project, function_name, revision FROM tasks WHERE state = 'queued'",
    ).all();
    return Promise.resolve(distinctLanes(rows));
  }

  recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    return this.commits.write(() => {
      const running = this.sql<
        [],
        { id: string; attempt: number; attempt_started_at: number | null; lost_attempts: number }
      >("SELECT id, attempt, attempt_started_at, lost_attempts FROM tasks WHERE state = 'running'").all();
      const update = this.sql(
        `UPDATE tasks
         SET state = @state, finished_at = @finishedAt, failure = @failure, attempt_started_at = NULL,
             callback_state = CASE WHEN @exhausted = 1 AND callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
             callback_next_at = CASE WHEN @exhausted = 1 THEN @finishedAt ELSE callback_next_at END,
             lost_attempts = lost_attempts + 1, attempts = json_insert(attempts, '$[#]', json(@attemptJson))
         WHERE id = @id`,
      );
      for (const task of running) {
        const failure: Failure = {
          kind: "lost",
          message: "the node running this attempt stopped before it finished",
          retryable: true,
        };
        const attempt: StoredAttempt = {
          number: task.attempt,
          startedAt: task.attempt_started_at ?? now.getTime(),
          finishedAt: now.getTime(),
          outcome: "lost",
          failure,
        };
        const exhausted = task.lost_attempts + 1 >= maxLostAttempts;
        update.run({
          id: task.id,
          state: exhausted ? "failed" : "queued",
          exhausted: exhausted ? 1 : 0,
          finishedAt: exhausted ? now.getTime() : null,
          failure: exhausted
            ? JSON.stringify({
                ...failure,
                message: `lost ${maxLostAttempts} times; not run again`,
                retryable: false,
              })
            : null,
          attemptJson: JSON.stringify(attempt),
        });
      }
      return running.length;
    }, true);
  }

  handBackTasks(attempts: { taskId: string; attempt: number }[]): Promise<number> {
    const update = this.sql(
      `UPDATE tasks
       SET state = 'queued', attempt = attempt - 1, attempt_started_at = NULL, progress = NULL,
           started_at = CASE WHEN attempt = 1 THEN NULL ELSE started_at END,
           start_latency_ms = CASE WHEN attempt = 1 THEN NULL ELSE start_latency_ms END
       WHERE id = @taskId AND state = 'running' AND attempt = @attempt`,
    );
    return this.commits.write(
      () => attempts.reduce((count, attempt) => count + update.run(attempt).changes, 0),
      true,
    );
  }

  cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.commits.write(() => {
      this.sql(
        `UPDATE tasks SET state = 'cancelled', finished_at = @now, ${pendingCallbackSql}
           WHERE project = @project AND id = @id AND state IN ('queued', 'delayed')`,
      ).run({ now: now.getTime(), project, id });
      return this.selectTask(project, id);
    }, true);
  }

  requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.commits.write(() => {
      this.sql(
        `UPDATE tasks
           SET state = 'queued', run_at = @now, finished_at = NULL, result = NULL, failure = NULL,
               progress = NULL, charged_attempts = 0, lost_attempts = 0,
               callback_state = NULL, callback_attempts = 0, callback_next_at = NULL
           WHERE project = @project AND id = @id AND state IN ('succeeded', 'failed', 'timed_out', 'out_of_memory', 'cancelled')`,
      ).run({ project, id, now: now.getTime() });
      return this.selectTask(project, id);
    }, true);
  }

  claimDueCallbacks(now: Date, limit: number, leaseMs: number): Promise<DueCallback[]> {
    return this.commits.write(() => {
      const rows = this.sql<[number, number, number], TaskRow & { callback_url: string }>(
        `UPDATE tasks SET callback_next_at = ?
         WHERE seq IN (SELECT seq FROM tasks WHERE callback_state = 'pending' AND callback_next_at <= ?
                       ORDER BY callback_next_at LIMIT ?)
         RETURNING *`,
      ).all(now.getTime() + leaseMs, now.getTime(), limit);
      rows.sort((a, b) => a.seq - b.seq);
      return rows.map((row) => ({
        task: toTask(row),
        url: row.callback_url,
        attempts: row.callback_attempts,
      }));
    }, false);
  }

  nextCallbackAt(): Promise<Date | null> {
    const row = this.sql<[], { next: number | null }>(
      "SELECT min(callback_next_at) AS next FROM tasks WHERE callback_state = 'pending'",
    ).get();
    return Promise.resolve(row?.next == null ? null : new Date(row.next));
  }

  recordCallbackAttempt(
    taskId: string,
    outcome: { delivered: boolean; retryAt: Date | null },
  ): Promise<void> {
    const state = outcome.delivered ? "delivered" : outcome.retryAt === null ? "failed" : "pending";
    return this.commits.write(() => {
      this.sql(
        `UPDATE tasks SET callback_state = ?, callback_attempts = callback_attempts + 1, callback_next_at = ?
         WHERE id = ? AND callback_state = 'pending'`,
      ).run(state, outcome.retryAt?.getTime() ?? null, taskId);
    }, false);
  }

  getTask(project: string, id: string): Promise<Task | null> {
    return Promise.resolve(this.selectTask(project, id));
  }

  /** One node: its own waiters hear everything already. */
  watchTask(project: string, id: string): Promise<Task | null> {
    return this.getTask(project, id);
  }

  listTasks(query: TaskQuery): Promise<TaskPage> {
    const conditions = ["project = @project"];
    if (query.functionName !== undefined) conditions.push("function_name = @functionName");
    if (query.state !== undefined) conditions.push("state = @state");
    if (query.label !== undefined) conditions.push("label = @label");
    const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (before !== undefined) conditions.push("seq < @before");
    const rows = this.sql<unknown[], TaskRow>(
      `SELECT * FROM tasks WHERE ${conditions.join(" AND ")} ORDER BY seq DESC LIMIT @limit`,
    ).all({ ...query, before, limit: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return Promise.resolve({
      tasks: page.map(toTask),
      nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last.seq) : null,
    });
  }

  getTaskLog(project: string, id: string): Promise<string | null> {
    const row = this.sql<[string, string], { log: string }>(
      "SELECT log FROM tasks WHERE project = ? AND id = ?",
    ).get(project, id);
    return Promise.resolve(row?.log ?? null);
  }

  close(): Promise<void> {
    this.commits.flush();
    this.db.close();
    return Promise.resolve();
  }

  private selectTask(project: string, id: string): Task | null {
    const row = this.sql<[string, string], TaskRow>("SELECT * FROM tasks WHERE project = ? AND id = ?").get(
      project,
      id,
    );
    return row === undefined ? null : toTask(row);
  }

  private selectFunction(project: string, name: string): FunctionRecord | null {
    const row = this.sql<[string, string], FunctionRow>(
      `${selectFunctionSql} WHERE f.project = ? AND f.name = ?`,
    ).get(project, name);
    return row === undefined ? null : toFunctionRecord(row);
  }

  private requireFunction(project: string, name: string): FunctionRecord {
    const record = this.selectFunction(project, name);
    if (record === null) throw new Error(`function ${project}/${name} vanished inside its transaction`);
    return record;
  }

  private requireRevision(project: string, name: string, digest: string): RevisionRecord {
    const row = this.sql<[string, string, string], RevisionRow>(
      "SELECT digest, spec, size_bytes, created_at FROM revisions WHERE project = ? AND function_name = ? AND digest = ?",
    ).get(project, name, digest);
    if (row === undefined) throw new Error(`revision ${digest} vanished inside its transaction`);
    return toRevisionRecord(row);
  }
}

interface ClaimRow {
  seq: number;
  id: string;
  payload: string;
  priority: number;
  timeout_s: number;
  attempt: number;
  charged_attempts: number;
}

const selectFunctionSql = `
  SELECT f.project, f.name, f.current_revision, f.settings, r.spec, f.created_at, f.updated_at
  FROM functions f
  JOIN revisions r ON r.project = f.project AND r.function_name = f.name AND r.digest = f.current_revision`;

// A task that ends with a callback URL has its outcome delivered from @now on.
const pendingCallbackSql = `
  callback_state = CASE WHEN callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
  callback_next_at = CASE WHEN callback_url IS NOT NULL THEN @now ELSE callback_next_at END`;

// Appends @log to the task's log, cutting it at @maxLog characters once, with @marker at the cut.
const appendLogSql = `CASE
  WHEN length(log) > @maxLog THEN log
  WHEN length(log) + length(@log) > @maxLog THEN substr(log || @log, 1, @maxLog) || @marker
  ELSE log || @log END`;
