/**
 * Plans: named sets of limits that projects are put on. The limits are one JSON object, so a limit
 * added later needs no migration (a row without it reads as "not set"); text rather than jsonb, as it
 * is only ever read whole, never queried inside, and then reads back as SQLite's does.
 */
export const up = `
CREATE TABLE plans (
  name text PRIMARY KEY,
  limits text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
ALTER TABLE projects ADD COLUMN plan text REFERENCES plans (name);
-- a plan's deletion, and the foreign key check of it, look projects up by plan
CREATE INDEX projects_by_plan ON projects (plan) WHERE plan IS NOT NULL;
`;
