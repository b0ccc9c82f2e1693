/**
 * The queue rebuilt for throughput. Before, one wide `tasks` row held everything and every claim and
 * end rewrote it (payload, log, attempts and all) and wrote an entry into every index, since `state`
 * was in most of them: no update could be HOT, and dead index entries piled up at the head of the
 * queue. Now:
 *
 * - `tasks` keeps what a task is and where it stands, and no column that a claim or an end changes is
 *   indexed (partial-index predicates included), so those updates are HOT: the new row version goes in
 *   the same page and no index is touched. `fillfactor = 70` leaves each page room for the next
 *   versions of its rows (a task is updated about twice per attempt; a drain updates rows at the head
 *   of the table, written together, so their pages fill up together). Autovacuum keeps its defaults
 *   here: the dead versions HOT leaves are pruned by the next statement that visits the page, without a
 *   vacuum, so vacuum only has the rare non-HOT update (a page that was full) to clean up after.
 * - Where a task waits is a small table of its own, which the step that moves it deletes from:
 *   `ready` (queued; claims delete), `running` (claims insert, ends and recovery delete; carries the
 *   claiming node and attempt, the fencing token), `delayed` (ends of a retry insert, releases delete).
 *   Their rows are a few integers, so their indexes stay small and cached; they churn, so autovacuum
 *   runs on them after a fixed number of dead rows instead of a fraction of the table
 *   (`autovacuum_vacuum_scale_factor = 0`), without cost-based pauses, so the dead index entries that
 *   claims would read past at the head of the queue are cleared while the queue drains.
 * - Lanes are integer ids (`lanes`: project, function, revision → id) in the hot rows and indexes.
 * - `function_slots` holds, per function, its attempts running on every node: a claim adds what it
 *   takes (never past `maxConcurrency`) and an end or a recovery subtracts what it stops, in the same
 *   statement; the row lock serialises the claims of one function across nodes for the length of one
 *   statement, instead of an advisory lock and a `count(*)` of running tasks per claim.
 * - Payloads, results, attempts and logs live beside, appended: `task_payloads` (written once),
 *   `task_results` (the last attempt's result or failure), `task_attempts` and `task_logs` (one row per
 *   attempt, as JSON text and as text). `task_view` puts a task back together for reads.
 * - Callback deliveries are the outbox `callbacks`, a row from the end of the task on.
 *
 * Existing tasks are carried over unchanged (ids, seq, attempts, logs, callback states).
 */
export const up = `
CREATE TABLE function_slots (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project text NOT NULL,
  function_name text NOT NULL,
  -- attempts of the function running on every node; updated by every claim and end of the function,
  -- so its pages keep room for many versions of each row (only the primary key is indexed: HOT)
  running integer NOT NULL DEFAULT 0,
  -- what the latest claim was granted, read back by that claim's own statement
  granted integer NOT NULL DEFAULT 0,
  UNIQUE (project, function_name)
) WITH (fillfactor = 20);

CREATE TABLE lanes (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slot_id integer NOT NULL REFERENCES function_slots (id),
  project text NOT NULL,
  function_name text NOT NULL,
  revision text NOT NULL,
  UNIQUE (project, function_name, revision)
);

ALTER TABLE tasks RENAME TO tasks_before_003;
ALTER INDEX tasks_ready RENAME TO tasks_before_003_ready;
ALTER INDEX tasks_ready_oldest RENAME TO tasks_before_003_ready_oldest;
ALTER INDEX tasks_delayed RENAME TO tasks_before_003_delayed;
ALTER INDEX tasks_idempotency RENAME TO tasks_before_003_idempotency;
ALTER INDEX tasks_by_project RENAME TO tasks_before_003_by_project;
ALTER INDEX tasks_by_function RENAME TO tasks_before_003_by_function;
ALTER INDEX tasks_by_state RENAME TO tasks_before_003_by_state;
ALTER INDEX tasks_by_node RENAME TO tasks_before_003_by_node;
ALTER INDEX tasks_by_label RENAME TO tasks_before_003_by_label;
ALTER INDEX tasks_callbacks_due RENAME TO tasks_before_003_callbacks_due;
ALTER INDEX tasks_running RENAME TO tasks_before_003_running;

CREATE TABLE tasks (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  project text NOT NULL,
  lane_id integer NOT NULL,
  -- changed by claims and ends: not indexed
  state text NOT NULL,
  priority integer NOT NULL,
  label text,
  idempotency_key text,
  timeout_s integer NOT NULL,
  created_at bigint NOT NULL,
  run_at bigint NOT NULL,
  started_at bigint,
  finished_at bigint,
  start_latency_ms bigint,
  attempt integer NOT NULL DEFAULT 0,
  attempt_started_at bigint,
  lost_attempts integer NOT NULL DEFAULT 0,
  -- finished attempts that count against the function's retries (not lost ones; reset by a manual retry)
  charged_attempts integer NOT NULL DEFAULT 0,
  -- characters in task_logs, to cut the log at its limit without reading it
  log_chars integer NOT NULL DEFAULT 0,
  awaited boolean NOT NULL DEFAULT false,
  callback_url text,
  progress text
) WITH (fillfactor = 70);

CREATE UNIQUE INDEX tasks_idempotency ON tasks (project, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_project ON tasks (project, seq);
CREATE INDEX tasks_by_lane ON tasks (lane_id, seq);
CREATE INDEX tasks_by_label ON tasks (project, label, seq) WHERE label IS NOT NULL;

CREATE TABLE task_payloads (
  seq bigint PRIMARY KEY,
  payload text NOT NULL
);

CREATE TABLE task_results (
  seq bigint PRIMARY KEY,
  result text,
  failure text
);

CREATE TABLE task_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY,
  seq bigint NOT NULL,
  -- JSON text: {number, startedAt, finishedAt, outcome, failure?}
  attempt text NOT NULL,
  PRIMARY KEY (seq, id)
);

CREATE TABLE task_logs (
  id bigint GENERATED ALWAYS AS IDENTITY,
  seq bigint NOT NULL,
  chunk text NOT NULL,
  PRIMARY KEY (seq, id)
);

-- Queued tasks, by lane in both claim orders. Claims delete from it.
CREATE TABLE ready (
  seq bigint PRIMARY KEY,
  lane_id integer NOT NULL,
  priority integer NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX ready_by_priority ON ready (lane_id, priority DESC, seq);
CREATE INDEX ready_oldest ON ready (lane_id, seq);

-- Running attempts: the node that claimed each, and the attempt number that fences late ends.
CREATE TABLE running (
  seq bigint PRIMARY KEY,
  node_id text NOT NULL,
  attempt integer NOT NULL,
  slot_id integer NOT NULL,
  claimed_at bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX running_by_node ON running (node_id, claimed_at);

-- Tasks waiting for their run time (delayed, or a retry's backoff).
CREATE TABLE delayed (
  seq bigint PRIMARY KEY,
  lane_id integer NOT NULL,
  run_at bigint NOT NULL
);
CREATE INDEX delayed_by_run_at ON delayed (run_at);

-- The callback outbox: state 'pending' (due at next_at), 'delivered' or 'failed' (retries used up).
CREATE TABLE callbacks (
  seq bigint PRIMARY KEY,
  url text NOT NULL,
  state text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_at bigint
);
CREATE INDEX callbacks_due ON callbacks (next_at) WHERE state = 'pending';

CREATE VIEW task_view AS
  SELECT t.seq, t.id, t.project, l.function_name, l.revision, t.state, t.priority, p.payload, t.label,
         t.idempotency_key, t.timeout_s, t.created_at, t.run_at, t.started_at, t.finished_at,
         t.start_latency_ms, t.attempt, t.attempt_started_at, t.lost_attempts,
         coalesce((SELECT '[' || string_agg(a.attempt, ',' ORDER BY a.id) || ']'
                     FROM task_attempts a WHERE a.seq = t.seq), '[]') AS attempts,
         r.result, r.failure, t.progress, t.callback_url, t.awaited, t.lane_id
  FROM tasks t
  JOIN lanes l ON l.id = t.lane_id
  JOIN task_payloads p ON p.seq = t.seq
  LEFT JOIN task_results r ON r.seq = t.seq;

-- Carry the tasks over.
INSERT INTO function_slots (project, function_name)
  SELECT DISTINCT project, function_name FROM tasks_before_003;
INSERT INTO lanes (slot_id, project, function_name, revision)
  SELECT DISTINCT s.id, o.project, o.function_name, o.revision
  FROM tasks_before_003 o JOIN function_slots s ON s.project = o.project AND s.function_name = o.function_name;
INSERT INTO tasks (seq, id, project, lane_id, state, priority, label, idempotency_key, timeout_s, created_at,
                   run_at, started_at, finished_at, start_latency_ms, attempt, attempt_started_at,
                   lost_attempts, charged_attempts, log_chars, awaited, callback_url, progress)
  OVERRIDING SYSTEM VALUE
  SELECT o.seq, o.id, o.project, l.id, o.state, o.priority, o.label, o.idempotency_key, o.timeout_s,
         o.created_at, o.run_at, o.started_at, o.finished_at, o.start_latency_ms, o.attempt,
         o.attempt_started_at, o.lost_attempts, o.charged_attempts, length(o.log), o.awaited,
         o.callback_url, o.progress
  FROM tasks_before_003 o
  JOIN lanes l ON l.project = o.project AND l.function_name = o.function_name AND l.revision = o.revision;
SELECT setval(pg_get_serial_sequence('tasks', 'seq'), coalesce((SELECT max(seq) FROM tasks), 0) + 1, false);
INSERT INTO task_payloads (seq, payload) SELECT seq, payload FROM tasks_before_003;
INSERT INTO task_results (seq, result, failure)
  SELECT seq, result, failure FROM tasks_before_003 WHERE result IS NOT NULL OR failure IS NOT NULL;
-- json (not jsonb) keeps each attempt's text as written
INSERT INTO task_attempts (seq, attempt)
  SELECT o.seq, a.value::text
  FROM tasks_before_003 o, json_array_elements(o.attempts::json) WITH ORDINALITY AS a(value, n)
  ORDER BY o.seq, a.n;
INSERT INTO task_logs (seq, chunk) SELECT seq, log FROM tasks_before_003 WHERE log <> '' ORDER BY seq;
INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM tasks WHERE state = 'queued';
INSERT INTO delayed (seq, lane_id, run_at) SELECT seq, lane_id, run_at FROM tasks WHERE state = 'delayed';
INSERT INTO running (seq, node_id, attempt, slot_id, claimed_at)
  SELECT t.seq, coalesce(o.node_id, ''), t.attempt, l.slot_id, coalesce(t.attempt_started_at, t.created_at)
  FROM tasks t JOIN tasks_before_003 o ON o.seq = t.seq JOIN lanes l ON l.id = t.lane_id
  WHERE t.state = 'running';
UPDATE function_slots s SET running = (SELECT count(*) FROM running r WHERE r.slot_id = s.id);
INSERT INTO callbacks (seq, url, state, attempts, next_at)
  SELECT seq, callback_url, callback_state, callback_attempts, callback_next_at
  FROM tasks_before_003 WHERE callback_state IS NOT NULL AND callback_url IS NOT NULL;
DROP TABLE tasks_before_003;
`;
