/**
 * A full disk under a node's data directory (a small tmpfs, filled): writes answer 503 STORAGE_FULL,
 * nothing is half-written, and the node takes writes again, without a restart, once space is freed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { KilnApiError, type TaskInput } from "../../src/client/index.js";
import { deployTestFunction } from "./deploy-test-function.js";
import { startKilnServer, type KilnServer } from "./kiln-server.js";
import { listAllTasks } from "./task-listing.js";

const notRoot = process.getuid?.() !== 0 ? "mounting a tmpfs needs root" : false;

/** Writes zeros to `file` until the disk refuses more. */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, "w");
  const chunk = Buffer.alloc(1024 * 1024);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    await handle.close().catch(() => {});
  }
}

test(
  "a full disk: creating tasks answers 503 STORAGE_FULL with nothing half-written, and works again once space is freed",
  { timeout: 120_000, skip: notRoot },
  async (t) => {
    const root = await mkdtemp(path.join(tmpdir(), "kiln-full-disk-"));
    const dataDir = path.join(root, "data");
    execFileSync("mkdir", [dataDir]);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", dataDir]);
    let server: KilnServer | null = null;
    // One hook, in this order: the server stops before its data directory is unmounted and removed.
    t.after(async () => {
      await server?.stop();
      execFileSync("umount", ["-l", dataDir]);
      await rm(root, { recursive: true, force: true, maxRetries: 5 });
    });
    server = await startKilnServer({ dataDir });
    const { client } = server;
    await deployTestFunction(client, "echo");

    const filler = path.join(dataDir, "filler");
    await fillDisk(filler);
    // 200 tasks of 50 KB each: 10 MB, far more than whatever the database's files have left free.
    const batch: TaskInput[] = Array.from({ length: 200 }, (_, n) => ({
      function: "echo",
      payload: { n, padding: "x".repeat(50_000) },
    }));
    const refused = await client.createTasks(batch, { batchSize: 200 }).then(
      () => null,
      (error: unknown) => error,
    );
    assert.ok(refused instanceof KilnApiError, `expected a refusal, got ${String(refused)}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.code, "STORAGE_FULL");
    assert.match(refused.message, /disk .* is full/);
    assert.equal(refused.retryAfterS, 1);
    assert.deepEqual(await listAllTasks(client, { function: "echo" }), [], "part of the batch was written");

    await rm(filler);
    const created = await client.createTasks(batch, { batchSize: 200 });
    assert.equal(created.length, 200);
    const done = await client.waitForTask(created[0]!.id, { timeoutS: 30 });
    assert.equal(done.state, "succeeded");
  },
);
