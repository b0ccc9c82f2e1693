/**
 * The first PostgreSQL schema: the SQLite schema of migrations 001–003 in one step, plus the claiming
 * node of each running task. Times are bigint milliseconds since the epoch, as in SQLite, so the port's
 * dates round-trip exactly; JSON columns hold JSON text byte for byte as the caller wrote it (jsonb would
 * reorder keys and reject `\u0000` escapes).
 */
export const up = `
CREATE TABLE projects (
  name text PRIMARY KEY,
  created_at bigint NOT NULL
);

CREATE TABLE archives (
  digest text PRIMARY KEY,
  data bytea NOT NULL
);
-- tar.gz is compressed already: keep PostgreSQL from trying again
ALTER TABLE archives ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE revisions (
  -- insertion order, to list revisions deployed in the same millisecond newest first
  seq bigint GENERATED ALWAYS AS IDENTITY,
  project text NOT NULL,
  function_name text NOT NULL,
  digest text NOT NULL REFERENCES archives (digest),
  spec text NOT NULL,
  size_bytes integer NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (project, function_name, digest)
);

CREATE TABLE functions (
  project text NOT NULL REFERENCES projects (name),
  name text NOT NULL,
  current_revision text NOT NULL,
  settings text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (project, name)
);

CREATE TABLE tasks (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  project text NOT NULL,
  function_name text NOT NULL,
  revision text NOT NULL,
  state text NOT NULL,
  priority integer NOT NULL,
  payload text NOT NULL,
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
  -- the node that made the latest claim: recovery after a restart touches only its own running tasks
  node_id text,
  lost_attempts integer NOT NULL DEFAULT 0,
  -- finished attempts that count against the function's retries (not lost ones; reset by a manual retry)
  charged_attempts integer NOT NULL DEFAULT 0,
  attempts text NOT NULL DEFAULT '[]',
  result text,
  failure text,
  progress text,
  log text NOT NULL DEFAULT '',
  callback_url text,
  -- NULL: no callback; 'pending' (due at callback_next_at), 'delivered' or 'failed' (retries used up)
  callback_state text,
  callback_attempts integer NOT NULL DEFAULT 0,
  callback_next_at bigint
);

CREATE INDEX tasks_ready ON tasks (project, function_name, revision, priority DESC, seq) WHERE state = 'queued';
CREATE INDEX tasks_ready_oldest ON tasks (project, function_name, revision, seq) WHERE state = 'queued';
CREATE INDEX tasks_delayed ON tasks (run_at) WHERE state = 'delayed';
CREATE UNIQUE INDEX tasks_idempotency ON tasks (project, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_project ON tasks (project, seq);
CREATE INDEX tasks_by_function ON tasks (project, function_name, seq);
-- Statistics lag behind a queue: taken while few tasks were queued or running, they make any index
-- that finds all of them look as cheap as the right one. So no index leads with state (an attempt's end
-- would scan every running task instead of looking its id up), and this one leaves queued tasks to the
-- ready indexes (a claim would sort the whole queue instead of reading its head in order).
CREATE INDEX tasks_by_state ON tasks (project, state, seq) WHERE state <> 'queued';
-- the running tasks of the node that recovers after a restart
CREATE INDEX tasks_by_node ON tasks (node_id, state);
CREATE INDEX tasks_by_label ON tasks (project, label, seq) WHERE label IS NOT NULL;
CREATE INDEX tasks_callbacks_due ON tasks (callback_next_at) WHERE callback_state = 'pending';
`;
