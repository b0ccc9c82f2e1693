/** PostgreSQL's own counters around a measurement: commits of the database, updates and HOT updates per table. */
import type pg from "pg";

export interface Counters {
  commits: number;
  tables: Map<string, { updates: number; hot: number }>;
}

/**
 * Commits of the whole database (other clients of it count too) and, per table of `schema`, updates
 * and HOT updates. Read after a pause: a backend reports its counters at most once a second.
 */
export async function readCounters(admin: pg.Client, schema: string): Promise<Counters> {
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await admin.query("SELECT pg_stat_clear_snapshot()");
  const { rows: db } = await admin.query<{ commits: string }>(
    "SELECT xact_commit AS commits FROM pg_stat_database WHERE datname = current_database()",
  );
  const { rows } = await admin.query<{ relname: string; updates: string; hot: string }>(
    "SELECT relname, n_tup_upd AS updates, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE schemaname = $1",
    [schema],
  );
  return {
    commits: Number(db[0]?.commits ?? 0),
    tables: new Map(rows.map((row) => [row.relname, { updates: Number(row.updates), hot: Number(row.hot) }])),
  };
}

/** Commits per task, and the share of `table`'s updates that were HOT, between two readings. */
export function countersPerTask(
  before: Counters,
  after: Counters,
  tasks: number,
  table = "tasks",
): { commitsPerTask: number; hotShare: number } {
  const was = before.tables.get(table) ?? { updates: 0, hot: 0 };
  const now = after.tables.get(table) ?? was;
  const updates = now.updates - was.updates;
  return {
    commitsPerTask: (after.commits - before.commits) / tasks,
    hotShare: updates === 0 ? NaN : (now.hot - was.hot) / updates,
  };
}
