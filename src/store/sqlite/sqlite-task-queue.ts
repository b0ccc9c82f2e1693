/** The SQLite `TaskQueue`: enqueue, claim, the end of attempts, delayed tasks and recovery. */
import type { Lane } from "../../domain/lane.js";
import type { Failure, Progress, Task } from "../../domain/task.js";
import type { AttemptEnd, ClaimedTask, ClaimOptions, EnqueueResult, NewTask, TaskQueue } from "../store.js";
import {
  distinctLanes,
  logTruncatedMarker,
  toTask,
  type LaneRow,
  type StoredAttempt,
  type TaskRow,
} from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import { selectTask } from "./sqlite-task-reads.js";

export class SqliteTaskQueue implements TaskQueue {
  constructor(private readonly database: SqliteDatabase) {}

  enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    return this.database.commits.write(() => this.insertTasks(tasks), true);
  }

  enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: { lane: Lane; limit: number; now: Date; maxConcurrency?: number },
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    return this.database.commits.write(() => {
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
    }, true);
  }

  private insertTasks(tasks: NewTask[]): EnqueueResult[] {
    // A repeated idempotency key inserts nothing; the existing task is returned instead.
    const insert = this.database.sql<unknown[], TaskRow>(
      `INSERT INTO tasks (id, project, function_name, revision, state, priority, payload, label, idempotency_key,
                          timeout_s, created_at, run_at, callback_url)
       VALUES (@id, @project, @functionName, @revision, @state, @priority, @payload, @label, @idempotencyKey,
               @timeoutS, @createdAt, @runAt, @callbackUrl)
       ON CONFLICT (project, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING *`,
    );
    const selectByKey = this.database.sql<[string, string], TaskRow>(
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
    return Promise.resolve(this.claimNow(lane, limit, now, options));
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
    const rows = this.database
      .sql<unknown[], ClaimRow>(
        `UPDATE tasks
         SET state = 'running', attempt = attempt + 1, attempt_started_at = @now,
             started_at = coalesce(started_at, @now), start_latency_ms = coalesce(start_latency_ms, max(0, @now - run_at))
         WHERE seq IN (
           SELECT seq FROM tasks
           WHERE state = 'queued' AND project = @project AND function_name = @functionName AND revision = @revision
           ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"} LIMIT @limit)
         RETURNING seq, id, payload, priority, timeout_s, attempt, charged_attempts`,
      )
      .all({ ...lane, limit, now: now.getTime() });
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
    const row = this.database
      .sql<[string, string], { running: number }>(
        "SELECT count(*) AS running FROM tasks WHERE state = 'running' AND project = ? AND function_name = ?",
      )
      .get(lane.project, lane.functionName);
    return row?.running ?? 0;
  }

  finishAttempts(ends: AttemptEnd[]): Promise<void> {
    const update = this.database.sql(
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
    return this.database.commits.write(() => {
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
          maxLog: this.database.maxLogChars,
          marker: logTruncatedMarker,
        });
      }
    }, false);
  }

  updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void> {
    return this.database.commits.write(() => {
      this.database
        .sql("UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running' AND attempt = ?")
        .run(JSON.stringify(progress), taskId, attempt);
    }, false);
  }

  releaseDueTasks(now: Date): Promise<Lane[]> {
    const rows = this.database
      .sql<[number], LaneRow>(
        `UPDATE tasks SET state = 'queued' WHERE state = 'delayed' AND run_at <= ?
         RETURNING project, function_name, revision`,
      )
      .all(now.getTime());
    return Promise.resolve(distinctLanes(rows));
  }

  nextRunAt(): Promise<Date | null> {
    const row = this.database
      .sql<[], { next: number | null }>("SELECT min(run_at) AS next FROM tasks WHERE state = 'delayed'")
      .get();
    return Promise.resolve(row?.next == null ? null : new Date(row.next));
  }

  listReadyLanes(): Promise<Lane[]> {
    const rows = this.database
      .sql<[], LaneRow>("SELECT DISTINCT project, function_name, revision FROM tasks WHERE state = 'queued'")
      .all();
    return Promise.resolve(distinctLanes(rows));
  }

  recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    return this.database.commits.write(() => {
      const running = this.database
        .sql<[], { id: string; attempt: number; attempt_started_at: number | null; lost_attempts: number }>(
          "SELECT id, attempt, attempt_started_at, lost_attempts FROM tasks WHERE state = 'running'",
        )
        .all();
      const update = this.database.sql(
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

  cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.database.commits.write(() => {
      this.database
        .sql(
          `UPDATE tasks SET state = 'cancelled', finished_at = @now, ${pendingCallbackSql}
           WHERE project = @project AND id = @id AND state IN ('queued', 'delayed')`,
        )
        .run({ now: now.getTime(), project, id });
      return selectTask(this.database, project, id);
    }, true);
  }

  requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.database.commits.write(() => {
      this.database
        .sql(
          `UPDATE tasks
           SET state = 'queued', run_at = @now, finished_at = NULL, result = NULL, failure = NULL,
               progress = NULL, charged_attempts = 0, lost_attempts = 0,
               callback_state = NULL, callback_attempts = 0, callback_next_at = NULL
           WHERE project = @project AND id = @id AND state IN ('succeeded', 'failed', 'timed_out', 'out_of_memory', 'cancelled')`,
        )
        .run({ project, id, now: now.getTime() });
      return selectTask(this.database, project, id);
    }, true);
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

// A task that ends with a callback URL has its outcome delivered from @now on.
const pendingCallbackSql = `
  callback_state = CASE WHEN callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
  callback_next_at = CASE WHEN callback_url IS NOT NULL THEN @now ELSE callback_next_at END`;

// Appends @log to the task's log, cutting it at @maxLog characters once, with @marker at the cut.
const appendLogSql = `CASE
  WHEN length(log) > @maxLog THEN log
  WHEN length(log) + length(@log) > @maxLog THEN substr(log || @log, 1, @maxLog) || @marker
  ELSE log || @log END`;
