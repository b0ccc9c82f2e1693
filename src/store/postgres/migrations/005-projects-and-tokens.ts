/**
 * Projects get a description and an update time, and API tokens move into the store (`tokens`), so
 * that every node accepts the same ones and they can be created, listed and revoked at run time. A
 * token is kept as the SHA-256 digest of its secret; its scope is every project (`admin`, no project)
 * or one project with a role.
 */
export const up = `
ALTER TABLE projects ADD COLUMN description text NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN updated_at bigint;
UPDATE projects SET updated_at = created_at;
ALTER TABLE projects ALTER COLUMN updated_at SET NOT NULL;

CREATE TABLE tokens (
  -- insertion order, to list tokens created in the same millisecond newest first
  seq bigint GENERATED ALWAYS AS IDENTITY,
  id text PRIMARY KEY,
  name text NOT NULL,
  -- SHA-256 of the secret: what a request's token is looked up by
  digest bytea NOT NULL UNIQUE,
  project text REFERENCES projects (name),
  role text NOT NULL CHECK (role IN ('admin', 'deploy', 'run', 'read')),
  created_at bigint NOT NULL,
  expires_at bigint,
  last_used_at bigint,
  revoked_at bigint,
  CHECK ((role = 'admin') = (project IS NULL))
);
CREATE INDEX tokens_by_project ON tokens (project, created_at);

-- A project's deletion removes the archives no revision uses any more: it looks them up by digest,
-- and so does the foreign key check of each archive it deletes.
CREATE INDEX revisions_by_digest ON revisions (digest);
`;
