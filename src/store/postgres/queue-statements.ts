/**
 * The statements on every task's path, in plain sight: the claim and the end of attempts, each one
 * statement for a whole batch (schema and reasons: `migrations/003-queue-tables.ts`).
 */

/**
 * Claims up to $3 queued tasks of lane $1 in `order`, within the concurrency of the function's slot $2.
 *
 * Parameters: $1 lane id, $2 slot id, $3 limit, $4 now (epoch ms), $5 this node, $6 maxConcurrency (0:
 * none).
 *
 * Locking: `picked` locks the head of the lane in `ready` (FOR UPDATE) and passes over rows another
 * claim has locked (SKIP LOCKED), so claims of one lane never wait on each other there; a row another
 * claim deleted and committed after this statement's snapshot is skipped when locked. So every task is
 * started by exactly one claim, whatever the number of nodes. `slot` then updates the function's row
 * in `function_slots`: concurrent claims (and ends) of the function wait for each other on that row
 * lock, and each re-reads `running` as the previous one committed it (READ COMMITTED re-evaluates the
 * SET on the newest row version), so two nodes cannot both take the last free slot. The lock is held
 * for the rest of this one statement and its commit (on the fast pool, a commit without fsync), not
 * across round trips. Picked rows beyond the grant stay in `ready`, unlocked at commit. Only the
 * rows it takes are updated in `tasks`, and none of the columns it changes is indexed: HOT updates.
 *
 * A function without `maxConcurrency` has nothing to count: its claims leave the slot row alone and
 * their `running` rows have no slot (which ends then give back to nobody), so its claims and ends do not
 * wait for each other on that row. A limit set later counts the attempts still running in
 * (`countInRunningSql`).
 */
export function claimSql(order: "priority" | "oldest"): string {
  return `WITH picked AS (
      SELECT seq, priority FROM ready WHERE lane_id = $1
      ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"} LIMIT $3
      FOR UPDATE SKIP LOCKED),
    slot AS (
      UPDATE function_slots s
         SET granted = least(n.count, greatest(0, $6 - s.running)),
             running = s.running + least(n.count, greatest(0, $6 - s.running))
        FROM (SELECT count(*)::int AS count FROM picked) n
       WHERE s.id = $2 AND n.count > 0 AND $6 > 0
      RETURNING s.granted),
    taken AS (
      DELETE FROM ready r
       WHERE r.seq IN (SELECT seq FROM picked
                        ORDER BY ${order === "priority" ? "priority DESC, seq" : "seq"}
                        LIMIT CASE WHEN $6 > 0 THEN (SELECT granted FROM slot) ELSE $3 END)
      RETURNING r.seq),
    claimed AS (
      UPDATE tasks t
         SET state = 'running', attempt = t.attempt + 1, attempt_started_at = $4,
             started_at = coalesce(t.started_at, $4),
             start_latency_ms = coalesce(t.start_latency_ms, greatest(0, $4 - t.run_at))
        FROM taken
       WHERE t.seq = taken.seq
      RETURNING t.seq, t.id, t.priority, t.timeout_s, t.attempt, t.charged_attempts, t.awaited,
                t.callback_url IS NOT NULL AS has_callback),
    started AS (
      INSERT INTO running (seq, node_id, attempt, slot_id, claimed_at)
      SELECT seq, $5, attempt, CASE WHEN $6 > 0 THEN $2 END, $4 FROM claimed)
    SELECT c.seq, c.id, p.payload, c.priority, c.timeout_s, c.attempt, c.charged_attempts, c.awaited,
           c.has_callback
      FROM claimed c JOIN task_payloads p ON p.seq = c.seq`;
}

/**
 * Records the ends of a batch of attempts, given as arrays (one element per end): $1 task ids, $2
 * attempt numbers, $3 next states, $4 run times of retries (else null), $5 finish times of final ends
 * (else null), $6 results, $7 failures, $8 the attempts as JSON text, $9 1 when the attempt counts
 * against the retries, $10 whether the end is final, $11 logs; then $12 the log limit in characters,
 * $13 the truncation marker, $14 this node; $15 the attempts' start times (arrays again).
 *
 * A start is not a write of its own: the claim records the claim time, and the end of a first attempt
 * records when it really started (a task claimed ahead starts later than its claim).
 *
 * Fencing: an end applies only while its attempt is the one `running` holds for the task, claimed by
 * this node: `stopped` deletes that row, so of an end and a recovery of the same attempt only the first
 * to delete it counts. Every claim increments the attempt number, so an end from a node whose lease
 * expired (its task was recovered and claimed again) matches nothing; the node is checked too because a
 * claim whose commit PostgreSQL forgot in a crash may see its attempt number handed out again.
 *
 * Locking: `stopped` locks this node's own `running` rows (nobody else's); `freed` then the functions'
 * slot rows, in slot order, as claims do one at a time, so ends and claims cannot wait on each other in
 * a circle. The update of `tasks` changes no indexed column: HOT.
 */
export const finishAttemptsSql = `WITH e AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                         $8::text[], $9::int[], $10::boolean[], $11::text[], $15::bigint[])
      AS e(task_id, attempt, state, run_at, finished_at, result, failure, attempt_json, charged, final, log,
           started_at)),
  -- each end with its task, looked up by id (materialized, so that the running rows are then found by
  -- their key rather than by scanning all of this node's)
  ending AS MATERIALIZED (
    SELECT t.seq, t.lane_id, t.callback_url, t.awaited, t.id, t.log_chars, e.*
      FROM e JOIN tasks t ON t.id = e.task_id),
  stopped AS (
    DELETE FROM running r USING ending x
     WHERE r.seq = x.seq AND r.attempt = x.attempt AND r.node_id = $14
    RETURNING r.seq, r.slot_id, x.lane_id, x.callback_url, x.awaited, x.id, x.state, x.run_at, x.finished_at,
              x.result, x.failure, x.attempt_json, x.charged, x.final, x.attempt, x.started_at,
              CASE WHEN x.log_chars > $12 THEN ''
                   WHEN x.log_chars + length(x.log) > $12 THEN substr(x.log, 1, $12 - x.log_chars) || $13
                   ELSE x.log END AS chunk),
  freed AS (
    UPDATE function_slots s SET running = s.running - n.count
      FROM (SELECT slot_id, count(*)::int AS count FROM stopped GROUP BY slot_id ORDER BY slot_id) n
     WHERE s.id = n.slot_id),
  attempts AS (
    INSERT INTO task_attempts (seq, attempt) SELECT seq, attempt_json FROM stopped ORDER BY seq),
  logs AS (
    INSERT INTO task_logs (seq, chunk) SELECT seq, chunk FROM stopped WHERE chunk <> '' ORDER BY seq),
  results AS (
    INSERT INTO task_results (seq, result, failure) SELECT seq, result, failure FROM stopped
    ON CONFLICT (seq) DO UPDATE SET result = excluded.result, failure = excluded.failure),
  retries AS (
    INSERT INTO delayed (seq, lane_id, run_at) SELECT seq, lane_id, run_at FROM stopped WHERE state = 'delayed'),
  outbox AS (
    INSERT INTO callbacks (seq, url, state, attempts, next_at)
    SELECT seq, callback_url, 'pending', 0, finished_at FROM stopped WHERE final AND callback_url IS NOT NULL
    ON CONFLICT (seq) DO UPDATE SET state = 'pending', attempts = 0, next_at = excluded.next_at),
  ended AS (
    UPDATE tasks t
       SET state = s.state, run_at = coalesce(s.run_at, t.run_at), finished_at = s.finished_at,
           attempt_started_at = NULL, charged_attempts = t.charged_attempts + s.charged,
           log_chars = t.log_chars + length(s.chunk),
           started_at = CASE WHEN s.attempt = 1 THEN s.started_at ELSE t.started_at END,
           start_latency_ms = CASE WHEN s.attempt = 1 THEN greatest(0, s.started_at - t.run_at)
                                   ELSE t.start_latency_ms END
      FROM stopped s
     WHERE t.seq = s.seq)
  SELECT id FROM stopped WHERE final AND awaited`;

/**
 * A function that gets a `maxConcurrency` counts in its attempts claimed while it had none, so that
 * claims under the new limit see them: their `running` rows get the function's slot and its `running`
 * goes up by as many. $1 project, $2 function. It locks those `running` rows, then the slot row, in the
 * order ends lock them; an end waiting for one of those rows then sees the slot and gives it back.
 */
export const countInRunningSql = `WITH counted AS (
    UPDATE running r SET slot_id = l.slot_id
      FROM tasks t JOIN lanes l ON l.id = t.lane_id
     WHERE r.slot_id IS NULL AND t.seq = r.seq AND l.project = $1 AND l.function_name = $2
    RETURNING r.slot_id)
  UPDATE function_slots s SET running = s.running + n.count
    FROM (SELECT slot_id, count(*)::int AS count FROM counted GROUP BY slot_id) n
   WHERE s.id = n.slot_id`;
