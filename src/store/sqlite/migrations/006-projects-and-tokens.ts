/**
 * Projects get a description and an update time, and API tokens move into the store (`tokens`), so
 * that they can be created, listed and revoked at run time. A token is kept as the SHA-256 digest of
 * its secret; its scope is every project (`admin`, no project) or one project with a role.
 */
export const up = `
ALTER TABLE projects ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- SQLite adds a NOT NULL column only with a default: 0 is never kept, every insert sets it
ALTER TABLE projects ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET updated_at = created_at;

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  -- SHA-256 of the secret: what a request's token is looked up by
  digest BLOB NOT NULL UNIQUE,
  project TEXT REFERENCES projects (name),
  role TEXT NOT NULL CHECK (role IN ('admin', 'deploy', 'run', 'read')),
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  last_used_at INTEGER,
  revoked_at INTEGER,
  CHECK ((role = 'admin') = (project IS NULL))
);
CREATE INDEX tokens_by_project ON tokens (project, created_at);

-- A project's deletion removes the archives no revision uses any more: it looks them up by digest,
-- and so does the foreign key check of each archive it deletes.
CREATE INDEX revisions_by_digest ON revisions (digest);
`;
