/**
 * The PostgreSQL `TaskQueue`: enqueue, claim and the end of attempts (recovery of lost attempts is in
 * `postgres-task-recovery.ts`). Claims use `FOR UPDATE SKIP LOCKED` so nodes never start the same task.
 */
import pg from "pg";
import type { Lane } from "../../domain/lane.js";
import type { Progress, Task } from "../../domain/task.js";
import type { AttemptEnd, ClaimedTask, ClaimOptions, EnqueueResult, NewTask } from "../store.js";
import { distinctLanes, logTruncatedMarker, toTask, type LaneRow, type TaskRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { appendAttemptSql, insertTasks, taskColumns, toStoredAttempt } from "./statements.js";
import { selectTask } from "./postgres-task-reads.js";
import { rethrowUnavailable } from "./unavailable.js";

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

export class PostgresTaskQueue {
  constructor(private readonly connections: PostgresConnections) {}

  async enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    // One INSERT is one commit: the existing tasks of repeated keys are read after it, and they are
    // committed tasks that nothing deletes.
    if (tasks.length === 0) return [];
    const results = await insertTasks(this.connections.db, tasks);
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
    this.connections.announce.lanes(distinctLanes(lanes));
  }

  async enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: { lane: Lane; limit: number; now: Date; maxConcurrency?: number },
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    const outcome = await this.connections.transaction(async (db) => {
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
        this.connections.nodeId,
        maxConcurrency,
      ],
    };
    // $1 the function
    const lock = { name: "kiln_lock_function", text: lockFunctionSql, values: [functionKey] };
    let rows: ClaimRow[];
    if (maxConcurrency === 0) {
      rows = (await (db ?? this.connections.fastDb).query<ClaimRow>(statement)).rows;
    } else if (db !== null) {
      await db.query(lock);
      rows = (await db.query<ClaimRow>(statement)).rows;
    } else {
      // One round trip: the statements of one simple query run as one transaction, so the lock is held
      // while PostgreSQL runs them rather than across round trips to this node.
      const results = (await this.connections.fastPool
        .query(`${inlineValues(lock)}; ${inlineValues(statement)}`)
        .catch(rethrowUnavailable)) as unknown as pg.QueryResult<ClaimRow>[];
      rows = results[1]?.rows ?? [];
    }
    const awaited = rows.filter((row) => row.awaited).map((row) => row.id);
    if (awaited.length > 0) this.connections.announce.started(awaited);
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
    const { rows } = await this.connections.fastDb.query<{ id: string }>({
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
        this.connections.maxLogChars,
        logTruncatedMarker,
        this.connections.nodeId,
      ],
    });
    const ended = rows.flatMap((row) => (row.id === null ? [] : [row.id]));
    if (ended.length > 0) this.connections.announce.ended(ended);
  }

  async updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void> {
    // $1 progress JSON, $2 task, $3 attempt (fenced like an attempt's end)
    await this.connections.db.query({
      name: "kiln_update_progress",
      text: "UPDATE tasks SET progress = $1 WHERE id = $2 AND state = 'running' AND attempt = $3",
      values: [JSON.stringify(progress), taskId, attempt],
    });
  }

  async releaseDueTasks(now: Date): Promise<Lane[]> {
    // $1 now. Two nodes releasing at once: the second waits for the first's row locks, re-reads the
    // rows as queued and skips them, so each lane is named by one of them.
    const { rows } = await this.connections.db.query<LaneRow>({
      name: "kiln_release_due_tasks",
      text: `UPDATE tasks SET state = 'queued' WHERE state = 'delayed' AND run_at <= $1
               RETURNING project, function_name, revision`,
      values: [now.getTime()],
    });
    return distinctLanes(rows);
  }

  async nextRunAt(): Promise<Date | null> {
    const { rows } = await this.connections.db.query<{ next: number | null }>({
      text: "SELECT min(run_at) AS next FROM tasks WHERE state = 'delayed'",
    });
    return rows[0]?.next == null ? null : new Date(rows[0].next);
  }

  async listReadyLanes(): Promise<Lane[]> {
    const { rows } = await this.connections.db.query<LaneRow>({
      text: "SELECT DISTINCT project, function_name, revision FROM tasks WHERE state = 'queued'",
    });
    return distinctLanes(rows);
  }

  async cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now
    const { rows } = await this.connections.db.query<TaskRow & { awaited: boolean }>({
      text: `UPDATE tasks SET state = 'cancelled', finished_at = $3,
               callback_state = CASE WHEN callback_url IS NOT NULL THEN 'pending' ELSE callback_state END,
               callback_next_at = CASE WHEN callback_url IS NOT NULL THEN $3 ELSE callback_next_at END
             WHERE project = $1 AND id = $2 AND state IN ('queued', 'delayed')
             RETURNING ${taskColumns}, awaited`,
      values: [project, id, now.getTime()],
    });
    if (rows[0]?.awaited === true) this.connections.announce.ended([id]);
    // Not pending: read it again, since a node that just claimed it committed after this statement began.
    return rows[0] === undefined ? selectTask(this.connections.db, project, id) : toTask(rows[0]);
  }

  async requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now
    const { rows } = await this.connections.db.query<TaskRow>({
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
    return rows[0] === undefined ? selectTask(this.connections.db, project, id) : toTask(rows[0]);
  }
}
