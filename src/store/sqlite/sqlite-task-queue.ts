/**
 * The SQLite `TaskQueue`: enqueue, claim, the end of attempts, delayed tasks and recovery, on the tables
 * of migration 005. One writer (this process) and synchronous statements: no two claims interleave, so
 * a claim reads its function's slot row and takes what is left of `maxConcurrency`.
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
  TaskQueue,
} from "../store.js";
import { projectNotFound } from "../project-catalog.js";
import {
  distinctLanes,
  newTaskRecord,
  showClaimedAsRunning,
  toTask,
  type LaneRow,
  type TaskRow,
} from "../rows.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import type { LaneIds, SqliteLaneIds } from "./sqlite-lane-ids.js";
import { selectTask } from "./sqlite-task-reads.js";
import { writeNow } from "./sqlite-errors.js";
import {
  appendAttempt,
  appendLog,
  handBackRunningTasks,
  queueCallback,
  recoverRunningTasks,
  setResult,
} from "./sqlite-task-writes.js";

interface ClaimRow {
  seq: number;
  id: string;
  priority: number;
  timeout_s: number;
  attempt: number;
  charged_attempts: number;
  has_callback: number;
}

const finalStates = "('succeeded', 'failed', 'timed_out', 'out_of_memory', 'cancelled')";

export class SqliteTaskQueue implements TaskQueue {
  /** `laneIds` is shared with the project catalog, which makes it forget the lanes of a deleted project. */
  constructor(
    private readonly database: SqliteDatabase,
    private readonly laneIds: SqliteLaneIds,
  ) {}

  enqueueTasks(tasks: NewTask[]): Promise<EnqueueResult[]> {
    return this.withLaneIds(tasks, [], (laneIds) =>
      this.database.commits.write(() => this.insertTasks(tasks, laneIds), true),
    );
  }

  /**
   * Runs `write` with the lane ids of `tasks` and of `lanes` (null where the lane's project does not
   * exist), created first (committed apart, see `SqliteLaneIds`). A task whose project does not exist,
   * or a refusal to create a lane (a full disk), rejects instead of throwing.
   */
  private withLaneIds<T>(
    tasks: NewTask[],
    lanes: Lane[],
    write: (laneIds: number[], claimLanes: (LaneIds | null)[]) => Promise<T>,
  ): Promise<T> {
    let laneIds: number[];
    let claimLanes: (LaneIds | null)[];
    try {
      laneIds = tasks.map((task) => {
        const ids = this.laneIds.of(task);
        if (ids === null) throw projectNotFound(task.project);
        return ids.laneId;
      });
      claimLanes = lanes.map((lane) => this.laneIds.of(lane));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return write(laneIds, claimLanes);
  }

  enqueueAndClaimTasks(
    tasks: NewTask[],
    claim: EnqueueClaim,
  ): Promise<{ results: EnqueueResult[]; claimed: ClaimedTask[] }> {
    return this.withLaneIds(tasks, [claim.lane], (laneIds, [claimLane]) => {
      const apply = () => {
        const results = this.insertTasks(tasks, laneIds);
        const options = { maxConcurrency: claim.maxConcurrency };
        const claimed = claimLane
          ? this.claimNow(claim.lane, claimLane, claim.limit, claim.now, options)
          : [];
        showClaimedAsRunning(results, claimed);
        return { results, claimed };
      };
      // Not durable (a sync invoke): committed now, without waiting for the group's turn.
      if (claim.durable === false) {
        return writeNow(() => this.database.db.transaction(apply)()).then((outcome) => {
          claim.onClaimed?.(outcome.claimed);
          return outcome;
        });
      }
      return this.database.commits.write(apply, true, (outcome) => claim.onClaimed?.(outcome.claimed));
    });
  }

  /** Inserts each task with its payload and its place in `ready` or `delayed`; `laneIds[i]` is task i's. */
  private insertTasks(tasks: NewTask[], laneIds: number[]): EnqueueResult[] {
    this.laneIds.assertLive(tasks, laneIds);
    // A repeated idempotency key inserts nothing; the existing task is returned instead.
    const insert = this.database.sql<unknown[], { seq: number }>(
      `INSERT INTO tasks (id, project, lane_id, state, priority, label, idempotency_key, timeout_s, created_at,
                          run_at, callback_url)
       VALUES (@id, @project, @laneId, @state, @priority, @label, @idempotencyKey, @timeoutS, @createdAt,
               @runAt, @callbackUrl)
       ON CONFLICT (project, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING seq`,
    );
    const insertPayload = this.database.sql("INSERT INTO task_payloads (seq, payload) VALUES (?, ?)");
    const insertReady = this.database.sql("INSERT INTO ready (seq, lane_id, priority) VALUES (?, ?, ?)");
    const insertDelayed = this.database.sql("INSERT INTO delayed (seq, lane_id, run_at) VALUES (?, ?, ?)");
    const selectByKey = this.database.sql<[string, string], TaskRow>(
      "SELECT * FROM task_view WHERE project = ? AND idempotency_key = ?",
    );
    return tasks.map((task, i): EnqueueResult => {
      const laneId = laneIds[i]!;
      const state = task.runAt > task.createdAt ? "delayed" : "queued";
      const row = insert.get({
        ...task,
        laneId,
        state,
        createdAt: task.createdAt.getTime(),
        runAt: task.runAt.getTime(),
      });
      if (row === undefined) {
        const existing = selectByKey.get(task.project, task.idempotencyKey ?? "");
        if (existing === undefined) throw new Error(`task ${task.id} was neither inserted nor found`);
        return { task: toTask(existing), created: false };
      }
      insertPayload.run(row.seq, task.payload);
      if (state === "queued") insertReady.run(row.seq, laneId, task.priority);
      else insertDelayed.run(row.seq, laneId, task.runAt.getTime());
      return { task: newTaskRecord(task), created: true };
    });
  }

  claimTasks(lane: Lane, limit: number, now: Date, options: ClaimOptions = {}): Promise<ClaimedTask[]> {
    // Claims share the group commit with the attempt ends of their turn (at NORMAL, no fsync): lanes
    // claim ahead in batches, so the turn this waits is not on the path of a task's start.
    return this.withLaneIds([], [lane], (_, [ids]) =>
      ids
        ? this.database.commits.write(() => this.claimNow(lane, ids, limit, now, options), false)
        : Promise.resolve([]),
    );
  }

  /** Runs inside a transaction: takes the head of the lane from `ready` within the function's slots. */
  private claimNow(
    lane: Lane,
    { laneId, slotId }: LaneIds,
    wanted: number,
    now: Date,
    { order = "priority", maxConcurrency = 0 }: ClaimOptions,
  ): ClaimedTask[] {
    const running =
      this.database
        .sql<[number], { running: number }>("SELECT running FROM function_slots WHERE id = ?")
        .get(slotId)?.running ?? 0;
    const limit = maxConcurrency > 0 ? Math.min(wanted, maxConcurrency - running) : wanted;
    if (limit <= 0) return [];
    const taken = this.database
      .sql<[number, number], { seq: number }>(
        `DELETE FROM ready WHERE seq IN (
           SELECT seq FROM ready WHERE lane_id = ?
           ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"} LIMIT ?)
         RETURNING seq`,
      )
      .all(laneId, limit);
    if (taken.length === 0) return [];
    const seqs = JSON.stringify(taken.map((row) => row.seq));
    const rows = this.database
      .sql<unknown[], ClaimRow>(
        `UPDATE tasks
         SET state = 'running', attempt = attempt + 1, attempt_started_at = @now,
             started_at = coalesce(started_at, @now), start_latency_ms = coalesce(start_latency_ms, max(0, @now - run_at))
         WHERE seq IN (SELECT value FROM json_each(@seqs))
         RETURNING seq, id, priority, timeout_s, attempt, charged_attempts, callback_url IS NOT NULL AS has_callback`,
      )
      .all({ seqs, now: now.getTime() });
    this.database
      .sql(
        `INSERT INTO running (seq, attempt, slot_id, claimed_at)
         SELECT seq, attempt, @slotId, @now FROM tasks WHERE seq IN (SELECT value FROM json_each(@seqs))`,
      )
      .run({ seqs, slotId, now: now.getTime() });
    this.database
      .sql("UPDATE function_slots SET running = running + ? WHERE id = ?")
      .run(rows.length, slotId);
    const payloads = new Map(
      this.database
        .sql<[string], { seq: number; payload: string }>(
          "SELECT seq, payload FROM task_payloads WHERE seq IN (SELECT value FROM json_each(?))",
        )
        .all(seqs)
        .map((row) => [row.seq, row.payload]),
    );
    rows.sort((a, b) => (order === "priority" ? b.priority - a.priority : 0) || a.seq - b.seq);
    return rows.map((row) => ({
      id: row.id,
      lane,
      payload: payloads.get(row.seq) ?? "null",
      priority: row.priority as ClaimedTask["priority"],
      timeoutS: row.timeout_s,
      attempt: row.attempt,
      chargedAttempts: row.charged_attempts,
      startedAt: now,
      hasCallback: row.has_callback === 1,
    }));
  }

  finishAttempts(ends: AttemptEnd[]): Promise<void> {
    return this.database.commits.write(() => {
      // Slots are given back once per function, not once per end.
      const freed = new Map<number, number>();
      for (const end of ends) {
        const slotId = this.finishAttempt(end);
        if (slotId !== null) freed.set(slotId, (freed.get(slotId) ?? 0) + 1);
      }
      const giveBack = this.database.sql("UPDATE function_slots SET running = running - ? WHERE id = ?");
      for (const [slotId, count] of freed) giveBack.run(count, slotId);
    }, false);
  }

  /**
   * Records one end, fenced: only while `running` holds this attempt of the task. Returns the slot the
   * attempt held (the caller gives it back), or null when the end was not this attempt's to record.
   */
  private finishAttempt(end: AttemptEnd): number | null {
    const stopped = this.database
      .sql<[string, number], { seq: number; slot_id: number }>(
        `DELETE FROM running WHERE seq = (SELECT seq FROM tasks WHERE id = ?) AND attempt = ?
         RETURNING seq, slot_id`,
      )
      .get(end.taskId, end.attempt);
    if (stopped === undefined) return null;
    const { seq } = stopped;
    const final = end.next.state !== "delayed";
    const finishedAt = final ? end.finishedAt.getTime() : null;
    appendAttempt(this.database, seq, {
      number: end.attempt,
      startedAt: end.startedAt.getTime(),
      finishedAt: end.finishedAt.getTime(),
      outcome: end.outcome,
      ...(end.failure === null ? {} : { failure: end.failure }),
    });
    const loggedChars = appendLog(this.database, seq, end.log);
    setResult(this.database, seq, end.result, end.failure === null ? null : JSON.stringify(end.failure));
    const task = this.database
      .sql<unknown[], { lane_id: number; callback_url: string | null }>(
        `UPDATE tasks
         SET state = @state, run_at = coalesce(@runAt, run_at), finished_at = @finishedAt, attempt_started_at = NULL,
             charged_attempts = charged_attempts + @charged, log_chars = log_chars + @chars,
             -- the end of a first attempt records when it really started (the claim recorded the claim)
             started_at = CASE WHEN @attempt = 1 THEN @startedAt ELSE started_at END,
             start_latency_ms = CASE WHEN @attempt = 1 THEN max(0, @startedAt - run_at) ELSE start_latency_ms END
         WHERE seq = @seq
         RETURNING lane_id, callback_url`,
      )
      .get({
        seq,
        state: end.next.state,
        runAt: end.next.state === "delayed" ? end.next.runAt.getTime() : null,
        finishedAt,
        charged: end.outcome === "lost" ? 0 : 1,
        chars: loggedChars,
        attempt: end.attempt,
        startedAt: end.startedAt.getTime(),
      });
    if (end.next.state === "delayed") {
      this.database
        .sql("INSERT INTO delayed (seq, lane_id, run_at) VALUES (?, ?, ?)")
        .run(seq, task?.lane_id, end.next.runAt.getTime());
    } else if (task?.callback_url != null && finishedAt !== null) {
      queueCallback(this.database, seq, task.callback_url, finishedAt);
    }
    return stopped.slot_id;
  }

  updateProgress(taskId: string, attempt: number, progress: Progress): Promise<void> {
    return this.database.commits.write(() => {
      this.database
        .sql("UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running' AND attempt = ?")
        .run(JSON.stringify(progress), taskId, attempt);
    }, false);
  }

  releaseDueTasks(now: Date): Promise<Lane[]> {
    const release = this.database.db.transaction(() => {
      const due = this.database
        .sql<[number], { seq: number; lane_id: number }>(
          "DELETE FROM delayed WHERE run_at <= ? RETURNING seq, lane_id",
        )
        .all(now.getTime());
      if (due.length === 0) return [];
      const seqs = JSON.stringify(due.map((row) => row.seq));
      this.database
        .sql(
          `INSERT INTO ready (seq, lane_id, priority)
           SELECT seq, lane_id, priority FROM tasks WHERE seq IN (SELECT value FROM json_each(?))`,
        )
        .run(seqs);
      this.database
        .sql("UPDATE tasks SET state = 'queued' WHERE seq IN (SELECT value FROM json_each(?))")
        .run(seqs);
      return this.database
        .sql<[string], LaneRow>(
          `SELECT project, function_name, revision FROM lanes
           WHERE id IN (SELECT value FROM json_each(?))`,
        )
        .all(JSON.stringify([...new Set(due.map((row) => row.lane_id))]));
    });
    return writeNow(() => distinctLanes(release()));
  }

  nextRunAt(): Promise<Date | null> {
    const row = this.database
      .sql<[], { next: number | null }>("SELECT min(run_at) AS next FROM delayed")
      .get();
    return Promise.resolve(row?.next == null ? null : new Date(row.next));
  }

  listReadyLanes(): Promise<Lane[]> {
    const rows = this.database
      .sql<[], LaneRow>(
        `SELECT project, function_name, revision FROM lanes l
         WHERE EXISTS (SELECT 1 FROM ready r WHERE r.lane_id = l.id)`,
      )
      .all();
    return Promise.resolve(distinctLanes(rows));
  }

  recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    return this.database.commits.write(() => recoverRunningTasks(this.database, now, maxLostAttempts), true);
  }

  handBackTasks(attempts: { taskId: string; attempt: number }[]): Promise<number> {
    return this.database.commits.write(() => handBackRunningTasks(this.database, attempts), true);
  }

  cancelPendingTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.database.commits.write(() => {
      const pending = this.database
        .sql<[number, string, string], { seq: number; callback_url: string | null }>(
          `UPDATE tasks SET state = 'cancelled', finished_at = ?
           WHERE project = ? AND id = ? AND state IN ('queued', 'delayed')
           RETURNING seq, callback_url`,
        )
        .get(now.getTime(), project, id);
      if (pending !== undefined) {
        this.database.sql("DELETE FROM ready WHERE seq = ?").run(pending.seq);
        this.database.sql("DELETE FROM delayed WHERE seq = ?").run(pending.seq);
        if (pending.callback_url !== null)
          queueCallback(this.database, pending.seq, pending.callback_url, now.getTime());
      }
      return selectTask(this.database, project, id);
    }, true);
  }

  requeueFinishedTask(project: string, id: string, now: Date): Promise<Task | null> {
    return this.database.commits.write(() => {
      const again = this.database
        .sql<unknown[], { seq: number; lane_id: number; priority: number }>(
          `UPDATE tasks
           SET state = 'queued', run_at = @now, finished_at = NULL, progress = NULL, charged_attempts = 0,
               lost_attempts = 0
           WHERE project = @project AND id = @id AND state IN ${finalStates}
           RETURNING seq, lane_id, priority`,
        )
        .get({ project, id, now: now.getTime() });
      if (again !== undefined) {
        this.database
          .sql("INSERT INTO ready (seq, lane_id, priority) VALUES (?, ?, ?)")
          .run(again.seq, again.lane_id, again.priority);
        this.database.sql("DELETE FROM task_results WHERE seq = ?").run(again.seq);
        this.database.sql("DELETE FROM callbacks WHERE seq = ?").run(again.seq);
      }
      return selectTask(this.database, project, id);
    }, true);
  }
}
