/**
 * What the PostgreSQL tests share. The database is `KILN_TEST_DATABASE_URL` (`.ci/run` sets it):
 * without it the PostgreSQL tests are skipped, saying so; with it, one that cannot be reached fails them.
 */
import type { Lane } from "../../domain/lane.js";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { defaultSettings } from "../../domain/function-settings.js";
import type { NewTask } from "../store.js";
import { PostgresStore } from "./postgres-store.js";

export const testDatabaseUrl = process.env.KILN_TEST_DATABASE_URL || null;

/** The `skip` option of every PostgreSQL test. */
export const skipWithoutDatabase =
  testDatabaseUrl === null
    ? "KILN_TEST_DATABASE_URL is not set, so the PostgreSQL tests were skipped " +
      "(set it, e.g. to postgres://127.0.0.1:5432/test, to run them)"
    : false;

// A URL without a user means the OS user, as for psql; pg itself only looks at PGUSER and USER.
if (process.env.PGUSER === undefined && process.env.USER === undefined)
  process.env.PGUSER = userInfo().username;

/** Fresh schemas and the stores opened on them, all closed and dropped by `close`. */
export class TestDatabase {
  /** For statements of the test's own. */
  readonly admin: pg.Pool;
  private readonly schemas = new Set<string>();
  private readonly stores: PostgresStore[] = [];

  constructor(readonly url: string) {
    this.admin = new pg.Pool({ connectionString: url, max: 3, connectionTimeoutMillis: 5000 });
    this.admin.on("error", () => {});
  }

  /** Fails with a message that says what to do when the database cannot be reached. */
  async check(): Promise<void> {
    try {
      await this.admin.query("SELECT 1");
    } catch (error) {
      throw new Error(
        `PostgreSQL is not reachable at ${this.url} (${String(error)}). ` +
          "Start PostgreSQL there or point KILN_TEST_DATABASE_URL at one.",
      );
    }
  }

  fresh(): string {
    const schema = `kiln_test_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
    this.schemas.add(schema);
    return schema;
  }

  async openStore(schema: string, nodeId = "node-a"): Promise<PostgresStore> {
    const store = await PostgresStore.open({ connectionString: this.url, schema, nodeId, maxLogChars: 1000 });
    this.stores.push(store);
    return store;
  }

  /** Waits until a statement of a store whose text contains `sql` waits for a lock. */
  waitForLockWait(sql: string, what: string): Promise<void> {
    return waitFor(async () => {
      const { rows } = await this.admin.query<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE application_name LIKE 'kiln %' AND wait_event_type = 'Lock' AND strpos(query, $1) > 0`,
        [sql],
      );
      return rows[0]?.waiting === 1;
    }, what);
  }

  async close(): Promise<void> {
    await Promise.all(this.stores.map((store) => store.close()));
    for (const schema of this.schemas) await this.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await this.admin.end();
  }
}

export const project = "default";
export const lane: Lane = { project, functionName: "hello", revision: "a".repeat(64) };
export const t0 = new Date("2026-01-01T00:00:00.123Z");
export const at = (ms: number) => new Date(t0.getTime() + ms);

export async function deployHello(store: PostgresStore, archive = new Uint8Array([1, 2, 3])): Promise<void> {
  await store.ensureProject(project, t0);
  await store.deployRevision({
    project,
    name: lane.functionName,
    digest: lane.revision,
    spec: { runtime: "node", entry: ["index.js"] },
    archive,
    settings: defaultSettings,
    now: t0,
  });
}

export function newTask(overrides: Partial<NewTask> = {}): NewTask {
  return {
    id: randomUUID(),
    ...lane,
    priority: 0,
    payload: "{}",
    label: null,
    idempotencyKey: null,
    timeoutS: 60,
    createdAt: t0,
    runAt: t0,
    callbackUrl: null,
    ...overrides,
  };
}

/** Polls until `condition` holds, for at most five seconds. */
export async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}
