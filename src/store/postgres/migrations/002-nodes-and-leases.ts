/**
 * Many nodes on one database: the node registry with each node's lease, the tasks a caller waits on
 * (their start and end are announced to every node), and the running tasks of a function, counted by
 * claims that hold `maxConcurrency` across nodes.
 */
export const up = `
CREATE TABLE nodes (
  id text PRIMARY KEY,
  started_at bigint NOT NULL,
  heartbeat_at bigint NOT NULL,
  -- the database's clock, not the node's: nodes whose clocks disagree still agree on who has expired
  lease_expires_at bigint NOT NULL
);

ALTER TABLE tasks ADD COLUMN awaited boolean NOT NULL DEFAULT false;

CREATE INDEX tasks_running ON tasks (project, function_name) WHERE state = 'running';
`;
