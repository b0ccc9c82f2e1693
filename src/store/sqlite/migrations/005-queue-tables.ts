/**
 * The queue tables of PostgreSQL's migration 003, on SQLite (the reasons are written there): a narrow
 * `tasks` row that claims and ends change without touching an index on what they change; `ready`,
 * `running` and `delayed` as small tables of integers that the step moving a task deletes from; integer
 * lane ids; `function_slots` counting each function's running attempts (a claim reads its row instead
 * of counting running tasks); payloads, results, attempts, logs and the callback outbox beside,
 * appended. `task_view` puts a task back together for reads. Existing tasks are carried over unchanged.
 */
export const up = `
CREATE TABLE function_slots (
  id INTEGER PRIMARY KEY,
  project TEXT NOT NULL,
  function_name TEXT NOT NULL,
  running INTEGER NOT NULL DEFAULT 0,
  UNIQUE (project, function_name)
);

CREATE TABLE lanes (
  id INTEGER PRIMARY KEY,
  slot_id INTEGER NOT NULL REFERENCES function_slots (id),
  project TEXT NOT NULL,
  function_name TEXT NOT NULL,
  revision TEXT NOT NULL,
  UNIQUE (project, function_name, revision)
);

DROP INDEX tasks_ready;
DROP INDEX tasks_ready_oldest;
DROP INDEX tasks_delayed;
DROP INDEX tasks_idempotency;
DROP INDEX tasks_by_project;
DROP INDEX tasks_by_function;
DROP INDEX tasks_by_state;
DROP INDEX tasks_by_label;
DROP INDEX tasks_callbacks_due;
DROP INDEX tasks_running;
ALTER TABLE tasks RENAME TO tasks_before_005;

CREATE TABLE tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  project TEXT NOT NULL,
  lane_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  label TEXT,
  idempotency_key TEXT,
  timeout_s INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  start_latency_ms INTEGER,
  attempt INTEGER NOT NULL DEFAULT 0,
  attempt_started_at INTEGER,
  lost_attempts INTEGER NOT NULL DEFAULT 0,
  -- finished attempts that count against the function's retries (not lost ones; reset by a manual retry)
  charged_attempts INTEGER NOT NULL DEFAULT 0,
  -- characters in task_logs, to cut the log at its limit without reading it
  log_chars INTEGER NOT NULL DEFAULT 0,
  callback_url TEXT,
  progress TEXT
);
CREATE UNIQUE INDEX tasks_idempotency ON tasks (project, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_project ON tasks (project, seq);
CREATE INDEX tasks_by_lane ON tasks (lane_id, seq);
CREATE INDEX tasks_by_label ON tasks (project, label, seq) WHERE label IS NOT NULL;

CREATE TABLE task_payloads (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE task_results (seq INTEGER PRIMARY KEY, result TEXT, failure TEXT);
-- attempt: JSON text {number, startedAt, finishedAt, outcome, failure?}
CREATE TABLE task_attempts (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, attempt TEXT NOT NULL);
CREATE INDEX task_attempts_by_task ON task_attempts (seq, id);
CREATE TABLE task_logs (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, chunk TEXT NOT NULL);
CREATE INDEX task_logs_by_task ON task_logs (seq, id);

CREATE TABLE ready (seq INTEGER PRIMARY KEY, lane_id INTEGER NOT NULL, priority INTEGER NOT NULL);
CREATE INDEX ready_by_priority ON ready (lane_id, priority DESC, seq);
CREATE INDEX ready_oldest ON ready (lane_id, seq);
CREATE TABLE running (
  seq INTEGER PRIMARY KEY,
  attempt INTEGER NOT NULL,
  slot_id INTEGER NOT NULL,
  claimed_at INTEGER NOT NULL
);
CREATE TABLE delayed (seq INTEGER PRIMARY KEY, lane_id INTEGER NOT NULL, run_at INTEGER NOT NULL);
CREATE INDEX delayed_by_run_at ON delayed (run_at);
-- state 'pending' (due at next_at), 'delivered' or 'failed' (retries used up)
CREATE TABLE callbacks (
  seq INTEGER PRIMARY KEY,
  url TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER
);
CREATE INDEX callbacks_due ON callbacks (next_at) WHERE state = 'pending';

CREATE VIEW task_view AS
  SELECT t.seq, t.id, t.project, l.function_name, l.revision, t.state, t.priority, p.payload, t.label,
         t.idempotency_key, t.timeout_s, t.created_at, t.run_at, t.started_at, t.finished_at,
         t.start_latency_ms, t.attempt, t.attempt_started_at, t.lost_attempts,
         coalesce((SELECT '[' || group_concat(a.attempt, ',' ORDER BY a.id) || ']'
                     FROM task_attempts a WHERE a.seq = t.seq), '[]') AS attempts,
         r.result, r.failure, t.progress, t.callback_url, t.lane_id
  FROM tasks t
  JOIN lanes l ON l.id = t.lane_id
  JOIN task_payloads p ON p.seq = t.seq
  LEFT JOIN task_results r ON r.seq = t.seq;

INSERT INTO function_slots (project, function_name)
  SELECT DISTINCT project, function_name FROM tasks_before_005;
INSERT INTO lanes (slot_id, project, function_name, revision)
  SELECT DISTINCT s.id, o.project, o.function_name, o.revision
  FROM tasks_before_005 o JOIN function_slots s ON s.project = o.project AND s.function_name = o.function_name;
INSERT INTO tasks (seq, id, project, lane_id, state, priority, label, idempotency_key, timeout_s, created_at,
                   run_at, started_at, finished_at, start_latency_ms, attempt, attempt_started_at,
                   lost_attempts, charged_attempts, log_chars, callback_url, progress)
  SELECT o.seq, o.id, o.project, l.id, o.state, o.priority, o.label, o.idempotency_key, o.timeout_s,
         o.created_at, o.run_at, o.started_at, o.finished_at, o.start_latency_ms, o.attempt,
         o.attempt_started_at, o.lost_attempts, o.charged_attempts, length(o.log), o.callback_url, o.progress
  FROM tasks_before_005 o
  JOIN lanes l ON l.project = o.project AND l.function_name = o.function_name AND l.revision = o.revision
  ORDER BY o.seq;
INSERT INTO task_payloads (seq, payload) SELECT seq, payload FROM tasks_before_005;
INSERT INTO task_results (seq, result, failure)
  SELECT seq, result, failure FROM tasks_before_005 WHERE result IS NOT NULL OR failure IS NOT NULL;
INSERT INTO task_attempts (seq, attempt)
  SELECT o.seq, a.value FROM tasks_before_005 o, json_each(o.attempts) a ORDER BY o.seq, a.key;
INSERT INTO task_logs (seq, chunk) SELECT seq, log FROM tasks_before_005 WHERE log <> '' ORDER BY seq;
INSERT INTO ready (seq, lane_id, priority) SELECT seq, lane_id, priority FROM tasks WHERE state = 'queued';
INSERT INTO delayed (seq, lane_id, run_at) SELECT seq, lane_id, run_at FROM tasks WHERE state = 'delayed';
INSERT INTO running (seq, attempt, slot_id, claimed_at)
  SELECT t.seq, t.attempt, l.slot_id, coalesce(t.attempt_started_at, t.created_at)
  FROM tasks t JOIN lanes l ON l.id = t.lane_id WHERE t.state = 'running';
UPDATE function_slots SET running = (SELECT count(*) FROM running r WHERE r.slot_id = function_slots.id);
INSERT INTO callbacks (seq, url, state, attempts, next_at)
  SELECT seq, callback_url, callback_state, callback_attempts, callback_next_at
  FROM tasks_before_005 WHERE callback_state IS NOT NULL AND callback_url IS NOT NULL;
DROP TABLE tasks_before_005;
`;
