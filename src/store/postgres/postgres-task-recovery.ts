/**
 * Recovery of lost attempts on PostgreSQL: a node's own after its restart, those of nodes whose lease
 * expired, and those a node lost track of. Each is recorded as a `lost` attempt and the task queued
 * again (or failed, once lost too often). And the hand-back of the attempts a graceful stop gives up,
 * which records nothing.
 */
import type { Lane } from "../../domain/lane.js";
import type { Failure } from "../../domain/task.js";
import { distinctLanes, type LaneRow, type StoredAttempt } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { dbNowMs } from "./statements.js";

/** A running task whose attempt is recorded as `lost`. */
interface LostRow {
  seq: number;
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

export class PostgresTaskRecovery {
  constructor(private readonly connections: PostgresConnections) {}

  async recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    // $1 this node: the other nodes' running tasks are theirs to finish (or, once their lease has
    // expired, anyone's to recover: see `recoverExpiredLeases`).
    const recovery = await this.loseRunningTasks(
      "r.node_id = $1",
      [this.connections.nodeId],
      now,
      maxLostAttempts,
      "the node running this attempt stopped before it finished",
    );
    return recovery.lost;
  }

  /**
   * Queues again, as if never started, the attempts this node gives up at a graceful stop: see
   * `TaskQueue.handBackTasks`. Fenced like an end (the attempt `running` holds, claimed by this node).
   */
  async handBackTasks(attempts: { taskId: string; attempt: number }[]): Promise<number> {
    if (attempts.length === 0) return 0;
    // Sorted by task, as ends are, so that batches sharing a task lock its rows in the same order.
    const batch = [...attempts].sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
    // $1, $2 one array element per attempt; $3 this node. Like an end, the running row goes and gives
    // its function's slot back (slot rows locked in slot order); unlike one, no attempt is appended and
    // nothing is charged: the task goes back to `ready` with its attempt number one lower (a first
    // attempt leaves it never started). One row per task handed back, with its lane.
    const { rows } = await this.connections.db.query<LaneRow>({
      text: `WITH e AS (SELECT * FROM unnest($1::text[], $2::int[]) AS e(task_id, attempt)),
             giving AS MATERIALIZED (SELECT t.seq, e.attempt FROM e JOIN tasks t ON t.id = e.task_id),
             stopped AS (
               DELETE FROM running r USING giving g
                WHERE r.seq = g.seq AND r.attempt = g.attempt AND r.node_id = $3
               RETURNING r.seq, r.slot_id),
             freed AS (
               UPDATE function_slots s SET running = s.running - n.count
                 FROM (SELECT slot_id, count(*)::int AS count FROM stopped GROUP BY slot_id ORDER BY slot_id) n
                WHERE s.id = n.slot_id),
             back AS (
               UPDATE tasks t
                  SET state = 'queued', attempt = t.attempt - 1, attempt_started_at = NULL, progress = NULL,
                      started_at = CASE WHEN t.attempt = 1 THEN NULL ELSE t.started_at END,
                      start_latency_ms = CASE WHEN t.attempt = 1 THEN NULL ELSE t.start_latency_ms END
                 FROM stopped s
                WHERE t.seq = s.seq
               RETURNING t.seq, t.lane_id, t.priority),
             requeued AS (INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM back)
             SELECT l.project, l.function_name, l.revision FROM back b JOIN lanes l ON l.id = b.lane_id`,
      values: [batch.map((a) => a.taskId), batch.map((a) => a.attempt), this.connections.nodeId],
    });
    const lanes = distinctLanes(rows);
    // Announced at once: the other nodes start them without waiting for a poll.
    if (lanes.length > 0) this.connections.announce.lanes(lanes);
    return rows.length;
  }

  /**
   * Ends as `lost` the attempts running on nodes whose lease has expired (by the database's clock):
   * those nodes died, or lost the database for longer than a lease. Their tasks are queued again.
   */
  recoverExpiredLeases(now: Date, maxLostAttempts: number): Promise<Recovery> {
    // $1 this node, which is alive since it is asking
    return this.loseRunningTasks(
      `r.node_id IN (SELECT id FROM nodes WHERE lease_expires_at <= ${dbNowMs} AND id <> $1)`,
      [this.connections.nodeId],
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
      "r.node_id = $1 AND r.claimed_at < $2 AND NOT (t.id = ANY($3::text[]))",
      [this.connections.nodeId, claimedBefore.getTime(), known],
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
    const recovery = await this.connections.transaction(async (db): Promise<Recovery> => {
      // Attempts another node is recovering (or finishing) right now are skipped: theirs to record.
      const { rows: running } = await db.query<LostRow>({
        text: `SELECT r.seq, t.id, l.project, l.function_name, l.revision, r.attempt,
                      r.claimed_at AS attempt_started_at, t.lost_attempts, t.awaited
                 FROM running r JOIN tasks t ON t.seq = r.seq JOIN lanes l ON l.id = t.lane_id
                WHERE ${condition} ORDER BY r.seq FOR UPDATE OF r SKIP LOCKED`,
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
      // $1..$3 one array element per task; $4 now, $5 the failure of a task lost too often. Like an
      // end: the running rows go (and their slots with them), the attempt is appended, and the task is
      // queued again or, lost too often, failed (with its callback due).
      await db.query({
        text: `WITH e AS (
                 SELECT * FROM unnest($1::bigint[], $2::boolean[], $3::text[]) AS e(seq, exhausted, attempt_json)),
               stopped AS (DELETE FROM running r USING e WHERE r.seq = e.seq RETURNING r.seq, r.slot_id),
               freed AS (
                 UPDATE function_slots s SET running = s.running - n.count
                   FROM (SELECT slot_id, count(*)::int AS count FROM stopped GROUP BY slot_id ORDER BY slot_id) n
                  WHERE s.id = n.slot_id),
               attempts AS (
                 INSERT INTO task_attempts (seq, attempt)
                 SELECT e.seq, e.attempt_json FROM e JOIN stopped USING (seq) ORDER BY e.seq),
               lost AS (
                 UPDATE tasks t
                    SET state = CASE WHEN e.exhausted THEN 'failed' ELSE 'queued' END,
                        finished_at = CASE WHEN e.exhausted THEN $4::bigint END,
                        attempt_started_at = NULL, lost_attempts = t.lost_attempts + 1
                   FROM e JOIN stopped USING (seq)
                  WHERE t.seq = e.seq
                 RETURNING t.seq, t.lane_id, t.priority, t.callback_url, e.exhausted),
               failures AS (
                 INSERT INTO task_results (seq, result, failure) SELECT seq, NULL, $5 FROM lost WHERE exhausted
                 ON CONFLICT (seq) DO UPDATE SET result = NULL, failure = excluded.failure),
               requeued AS (
                 INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM lost WHERE NOT exhausted),
               outbox AS (
                 INSERT INTO callbacks (seq, url, state, attempts, next_at)
                 SELECT seq, callback_url, 'pending', 0, $4 FROM lost WHERE exhausted AND callback_url IS NOT NULL
                 ON CONFLICT (seq) DO UPDATE SET state = 'pending', attempts = 0, next_at = excluded.next_at)
               SELECT count(*) FROM lost`,
        values: [
          running.map((task) => task.seq),
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
    if (recovery.lanes.length > 0) this.connections.announce.lanes(recovery.lanes);
    if (recovery.ended.length > 0) this.connections.announce.ended(recovery.ended);
    return recovery;
  }
}
