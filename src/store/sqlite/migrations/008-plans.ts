/**
 * Plans: named sets of limits that projects are put on. The limits are one JSON object, so a limit
 * added later needs no migration (a row without it reads as "not set").
 */
export const up = `
CREATE TABLE plans (
  name TEXT PRIMARY KEY,
  limits TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
ALTER TABLE projects ADD COLUMN plan TEXT REFERENCES plans (name);
-- a plan's deletion, and the foreign key check of it, look projects up by plan
CREATE INDEX projects_by_plan ON projects (plan) WHERE plan IS NOT NULL;
`;
