/**
 * Recovery of lost attempts on PostgreSQL: a node's own after its restart, those of nodes whose lease
 * expired, and those a node lost track of. Each is recorded as a `lost` attempt and the task queued
 * again (or failed, once lost too often).
 */
import type { Lane } from "../../domain/lane.js";
import type { Failure } from "../../domain/task.js";
import { distinctLanes, type StoredAttempt } from "../rows.js";
import type { PostgresConnections } from "./postgres-connections.js";
import { appendAttemptSql } from "./statements.js";

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

export class PostgresTaskRecovery {
  constructor(private readonly connections: PostgresConnections) {}

  async recoverInterruptedTasks(now: Date, maxLostAttempts: number): Promise<number> {
    // $1 this node: the other nodes' running tasks are theirs to finish (or, once their lease has
    // expired, anyone's to recover: see `recoverExpiredLeases`).
    const recovery = await this.loseRunningTasks(
      "node_id = $1",
      [this.connections.nodeId],
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
      "node_id = $1 AND attempt_started_at < $2 AND NOT (id = ANY($3::text[]))",
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
    if (recovery.lanes.length > 0) this.connections.announce.lanes(recovery.lanes);
    if (recovery.ended.length > 0) this.connections.announce.ended(recovery.ended);
    return recovery;
  }
}
