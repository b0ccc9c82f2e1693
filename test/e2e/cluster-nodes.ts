/**
 * Several Kiln nodes on 127.0.0.1 sharing one PostgreSQL database (`KILN_TEST_DATABASE_URL`), each test on
 * a fresh schema that it drops afterwards; and reading the cluster's view of its nodes (`GET /v1/nodes`).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import pg from "pg";
import { startKilnServer, type KilnServer, type KilnServerOptions } from "./kiln-server.js";
import { pollUntil } from "./poll-until.js";

/** The database the cluster tests use; they skip when it is unset. */
export const clusterDatabaseUrl = process.env.KILN_TEST_DATABASE_URL;

export interface Cluster {
  /** The nodes, in the order of the options they were started with. */
  nodes: KilnServer[];
  databaseUrl: string;
  /** The schema all nodes share, `kiln_e2e_<hex>`. */
  schema: string;
}

/** A node as `GET /v1/nodes` lists it. */
export interface ClusterNode {
  id: string;
  startedAt: string;
  heartbeatAt: string;
  leaseExpiresAt: string;
  alive: boolean;
}

/**
 * Starts one node per entry of `nodeOptions` on a fresh schema of `KILN_TEST_DATABASE_URL` (the first
 * alone, so it creates the schema; the others together), and registers their stop and the schema's drop
 * with `t.after`. Marks the test skipped and resolves with null when the URL is unset.
 */
export async function startCluster(
  t: TestContext,
  nodeOptions: readonly KilnServerOptions[],
): Promise<Cluster | null> {
  const databaseUrl = clusterDatabaseUrl;
  if (databaseUrl === undefined || databaseUrl === "") {
    t.skip(
      "KILN_TEST_DATABASE_URL is not set: the multi-node tests need a PostgreSQL database " +
        "(e.g. KILN_TEST_DATABASE_URL=postgres://127.0.0.1:5432/test)",
    );
    return null;
  }
  // `pg` takes the user from PGUSER or USER only (psql would use the OS account); the nodes inherit it.
  process.env.PGUSER ??= process.env.USER ?? userInfo().username;
  const schema = `kiln_e2e_${randomBytes(4).toString("hex")}`;
  const nodes: KilnServer[] = [];
  t.after(async () => {
    const stopped = await Promise.allSettled(nodes.map((node) => node.stop()));
    await dropSchema(databaseUrl, schema);
    for (const result of stopped) if (result.status === "rejected") throw result.reason;
  });
  const start = async (options: KilnServerOptions) => {
    const node = await startKilnServer({
      ...options,
      args: ["--database", databaseUrl, ...(options.args ?? [])],
      env: { KILN_DATABASE_SCHEMA: schema, ...options.env },
    });
    nodes.push(node);
    return node;
  };
  const [first, ...others] = nodeOptions;
  if (first === undefined) throw new Error("a cluster needs at least one node");
  const firstNode = await start(first);
  const otherNodes = await Promise.all(others.map(start));
  return { nodes: [firstNode, ...otherNodes], databaseUrl, schema };
}

async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** The node at `index` modulo the number of nodes: round robin over the cluster. */
export function pickNode(nodes: readonly KilnServer[], index: number): KilnServer {
  const node = nodes[index % nodes.length];
  if (node === undefined) throw new Error("a cluster needs at least one node");
  return node;
}

/** The node id a server keeps in its data directory (`node-id`). */
export async function readNodeId(server: KilnServer): Promise<string> {
  return (await readFile(path.join(server.dataDir, "node-id"), "utf8")).trim();
}

/** `GET /v1/nodes` through `server`, with its admin token. */
export async function listClusterNodes(server: KilnServer): Promise<ClusterNode[]> {
  const response = await fetch(`${server.url}/v1/nodes`, {
    headers: { authorization: `Bearer ${server.token}` },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /v1/nodes answered ${response.status}: ${text.slice(0, 500)}`);
  return (JSON.parse(text) as { nodes: ClusterNode[] }).nodes;
}

/** Resolves with the node list once the alive nodes `server` lists are exactly `expectedIds`. */
export async function waitForAliveNodes(
  server: KilnServer,
  expectedIds: readonly string[],
  timeoutMs: number,
): Promise<ClusterNode[]> {
  const wanted = [...expectedIds].sort().join(",");
  let last: ClusterNode[] = [];
  try {
    return await pollUntil(
      `nodes ${wanted} to be the alive ones`,
      async () => {
        last = await listClusterNodes(server);
        const alive = last
          .filter((node) => node.alive)
          .map((node) => node.id)
          .sort()
          .join(",");
        return alive === wanted ? last : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; the last list was ${JSON.stringify(last)}`, {
      cause: error,
    });
  }
}

/** The last lines of every node's log, for a failure message. */
export function describeNodeLogs(nodes: readonly KilnServer[], lines = 30): string {
  return nodes
    .map(
      (node, index) =>
        `--- node ${index} (pid ${node.pid}) ---\n${node.log.split("\n").slice(-lines).join("\n")}`,
    )
    .join("\n");
}
