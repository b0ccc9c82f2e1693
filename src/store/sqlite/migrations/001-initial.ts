/** The first schema. Times are integer milliseconds since the epoch; JSON columns hold JSON text. */
export const up = `
CREATE TABLE projects (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
);

CREATE TABLE archives (
  digest TEXT PRIMARY KEY,
  data BLOB NOT NULL
);

CREATE TABLE revisions (
  project TEXT NOT NULL,
  function_name TEXT NOT NULL,
  digest TEXT NOT NULL REFERENCES archives (digest),
  spec TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project, function_name, digest)
);

CREATE TABLE functions (
  project TEXT NOT NULL REFERENCES projects (name),
  name TEXT NOT NULL,
  current_revision TEXT NOT NULL,
  settings TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project, name)
);

CREATE TABLE tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  project TEXT NOT NULL,
  function_name TEXT NOT NULL,
  revision TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  payload TEXT NOT NULL,
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
  attempts TEXT NOT NULL DEFAULT '[]',
  result TEXT,
  failure TEXT,
  progress TEXT,
  log TEXT NOT NULL DEFAULT ''
);

CREATE INDEX tasks_ready ON tasks (project, function_name, revision, priority DESC, seq) WHERE state = 'queued';
CREATE INDEX tasks_delayed ON tasks (run_at) WHERE state = 'delayed';
CREATE UNIQUE INDEX tasks_idempotency ON tasks (project, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_project ON tasks (project, seq);
CREATE INDEX tasks_by_function ON tasks (project, function_name, seq);
-- state first: it also finds the running tasks of every project when a node recovers
CREATE INDEX tasks_by_state ON tasks (state, project, seq);
CREATE INDEX tasks_by_label ON tasks (project, label, seq) WHERE label IS NOT NULL;
`;
