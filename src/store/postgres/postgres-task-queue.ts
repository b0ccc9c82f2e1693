/**
 * The PostgreSQL `TaskQueue`: enqueue, claim and the end of attempts (recovery of lost attempts is in
 * `postgres-task-recovery.ts`). Claims use `FOR UPDATE SKIP LOCKED` so nodes never start the same task.
 */
import type { Lane } from "../../domain/lane.js";
import type { Progress, Task } from "../../domain/task.js";
import type {
  AttemptEnd,
  ClaimedTask,
  ClaimOptions,
  EnqueueClaim,
  EnqueueResult,
  NewTask,
} from "../store.js";
import { projectNotFound } from "../project-catalog.js";
import { distinctLanes, logTruncatedMarker, showClaimedAsRunning, type LaneRow } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { selectTask } from "./postgres-task-reads.js";
import { claimSql, finishAttemptsSql } from "./queue-statements.js";
import { insertTasks, laneKeyOf, toStoredAttempt, type Queryable } from "./statements.js";

interface ClaimRow {
  seq: number;
  id: string;
  payload: string;
  priority: number;
  timeout_s: number;
  attempt: number;
  charged_attempts: number;
  awaited: boolean;
  has_callback: boolean;
}

export class PostgresTaskQueue {
  constructor(private readonly connections: PostgresConnections) {}

  async enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    // One INSERT is one commit: the existing tasks of repeated keys are read after it, and they are
    // committed tasks that nothing deletes.
    if (tasks.length === 0) return [];
    const results = await this.insert(this.connections.db, tasks);
    this.announceQueued(results);
    return results;
  }

  /**
   * Inserts the tasks (`insertTasks`), or rejects with `PROJECT_NOT_FOUND`. A batch refused for a lane
   * id cached before its project was deleted (and maybe created again since, through another node) is
   * tried once more with its lanes looked up afresh.
   */
  private async insert(db: Queryable, tasks: NewTask[]): Promise<EnqueueResult[]> {
    const first = await insertTasks(db, tasks, await this.laneIdsOf(tasks));
    if (Array.isArray(first)) return first;
    this.connections.laneIds.forget(tasks);
    const laneIds = await this.laneIdsOf(tasks);
    const again = await insertTasks(db, tasks, laneIds);
    if (Array.isArray(again)) return again;
    const refused = tasks.find((task) => again.refusedLaneIds.includes(laneIds.get(laneKeyOf(task)) ?? -1));
    throw projectNotFound(refused?.project ?? tasks[0]?.project ?? "");
  }

  /** The lane id of every task's lane, by `laneKeyOf`; rejects when a task's project does not exist. */
  private async laneIdsOf(tasks: NewTask[]): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    for (const task of tasks) {
      const key = laneKeyOf(task);
      if (ids.has(key)) continue;
      const lane = await this.connections.laneIds.of(task);
      if (lane === null) throw projectNotFound(task.project);
      ids.set(key, lane.laneId);
    }
    return ids;
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

  /**
   * The insert, then the claim: two statements of one round trip each, where a transaction took four
   * (`BEGIN`, insert, claim, `COMMIT`). The tasks are accepted once the insert commits; a claim that
   * fails then only leaves them queued for the usual claims. A sync invoke's insert (`durable: false`)
   * goes through the fast pool, without waiting for the WAL flush.
   */
  async enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: EnqueueClaim,
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    const db = claim.durable === false ? this.connections.fastDb : this.connections.db;
    const results = tasks.length === 0 ? [] : await this.insert(db, tasks);
    const claimed = await this.claimTasks(claim.lane, claim.limit, claim.now, {
      maxConcurrency: claim.maxConcurrency,
    }).catch(() => []);
    showClaimedAsRunning(results, claimed);
    claim.onClaimed?.(claimed);
    this.announceQueued(results);
    return { results, claimed };
  }

  /** One statement on the fast pool, one implicit transaction: see `claimSql` for the locking argument. */
  async claimTasks(
    lane: Lane,
    limit: number,
    now: Date,
    { order = "priority", maxConcurrency = 0 }: ClaimOptions = {},
  ): Promise<ClaimedTask[]> {
    if (limit <= 0) return [];
    const ids = await this.connections.laneIds.of(lane);
    if (ids === null) return [];
    const { laneId, slotId } = ids;
    // $1 lane, $2 its function's slot, $3 limit, $4 now (epoch ms), $5 this node, $6 maxConcurrency (0: none)
    const { rows } = await this.connections.fastDb.query<ClaimRow>({
      name: `kiln_claim_${order}`,
      text: claimSql(order),
      values: [laneId, slotId, limit, now.getTime(), this.connections.nodeId, maxConcurrency],
    });
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
      hasCallback: row.has_callback,
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
    // One statement for the batch, fenced by attempt and node: see `finishAttemptsSql`.
    const { rows } = await this.connections.fastDb.query<{ id: string }>({
      name: "kiln_finish_attempts",
      text: finishAttemptsSql,
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
        batch.map((end) => end.startedAt.getTime()),
      ],
    });
    const ended = rows.map((row) => row.id);
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
    // $1 now. Two nodes releasing at once take different rows (SKIP LOCKED), so each lane is named by
    // one of them.
    const { rows } = await this.connections.db.query<LaneRow>({
      name: "kiln_release_due_tasks",
      text: `WITH due AS (
               DELETE FROM delayed WHERE seq IN (
                 SELECT seq FROM delayed WHERE run_at <= $1 ORDER BY run_at FOR UPDATE SKIP LOCKED)
               RETURNING seq),
             queued AS (
               UPDATE tasks t SET state = 'queued' FROM due WHERE t.seq = due.seq
               RETURNING t.seq, t.lane_id, t.priority),
             ready_again AS (
               INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM queued)
             SELECT DISTINCT l.project, l.function_name, l.revision FROM queued q JOIN lanes l ON l.id = q.lane_id`,
      values: [now.getTime()],
    });
    return distinctLanes(rows);
  }

  async nextRunAt(): Promise<Date | null> {
    const { rows } = await this.connections.db.query<{ next: number | null }>({
      text: "SELECT min(run_at) AS next FROM delayed",
    });
    return rows[0]?.next == null ? null : new Date(rows[0].next);
  }

  async listReadyLanes(): Promise<Lane[]> {
    const { rows } = await this.connections.db.query<LaneRow>({
      text: `SELECT project, function_name, revision FROM lanes l
               WHERE EXISTS (SELECT 1 FROM ready r WHERE r.lane_id = l.id)`,
    });
    return distinctLanes(rows);
  }

  async cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now. The task leaves `ready` or `delayed` first: a claim that locked its
    // `ready` row first has it (this DELETE waits and then finds nothing), else the claim skips it.
    const { rows } = await this.connections.db.query<{ awaited: boolean }>({
      text: `WITH pending AS (
               SELECT seq FROM tasks WHERE project = $1 AND id = $2 AND state IN ('queued', 'delayed')),
             unqueued AS (DELETE FROM ready WHERE seq IN (SELECT seq FROM pending) RETURNING seq),
             undelayed AS (DELETE FROM delayed WHERE seq IN (SELECT seq FROM pending) RETURNING seq),
             cancelled AS (
               UPDATE tasks t SET state = 'cancelled', finished_at = $3
                WHERE t.seq IN (SELECT seq FROM unqueued UNION ALL SELECT seq FROM undelayed)
               RETURNING t.seq, t.callback_url, t.awaited),
             outbox AS (
               INSERT INTO callbacks (seq, url, state, attempts, next_at)
               SELECT seq, callback_url, 'pending', 0, $3 FROM cancelled WHERE callback_url IS NOT NULL
               ON CONFLICT (seq) DO UPDATE SET state = 'pending', attempts = 0, next_at = excluded.next_at)
             SELECT awaited FROM cancelled`,
      values: [project, id, now.getTime()],
    });
    if (rows[0]?.awaited === true) this.connections.announce.ended([id]);
    // Read after the change: as committed, or as a node that just claimed it left it.
    return selectTask(this.connections.db, project, id);
  }

  async requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    // $1 project, $2 task, $3 now. Its result and callback go; its attempts and log stay. The project's
    // row is held as an enqueue holds it (see `insertTasks`): a deletion of the project waits for this
    // to commit (and then counts the task as queued), or this waits for the deletion and finds nothing.
    await this.connections.db.query({
      text: `WITH live AS (SELECT name FROM projects WHERE name = $1 FOR KEY SHARE),
             again AS (
               UPDATE tasks
                  SET state = 'queued', run_at = $3, finished_at = NULL, progress = NULL, charged_attempts = 0,
                      lost_attempts = 0
                WHERE project IN (SELECT name FROM live) AND id = $2
                  AND state IN ('succeeded', 'failed', 'timed_out', 'out_of_memory', 'cancelled')
               RETURNING seq, lane_id, priority),
             queued AS (INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM again),
             no_result AS (DELETE FROM task_results WHERE seq IN (SELECT seq FROM again)),
             no_callback AS (DELETE FROM callbacks WHERE seq IN (SELECT seq FROM again))
             SELECT seq FROM again`,
      values: [project, id, now.getTime()],
    });
    return selectTask(this.connections.db, project, id);
  }
}
