/**
 * What the isolation suites share: tests that need `strong` isolation, and looking at a sandbox's
 * processes from the host. CI sets `KILN_REQUIRE_STRONG_ISOLATION=1`: there the suites fail instead of
 * skipping when the host cannot give `strong` isolation, so a CI machine that lost bwrap or cgroups
 * cannot pass them silently.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { test } from "node:test";
import type { Task } from "../../src/client/index.js";
import { isSandboxUid, type KilnServer } from "../e2e/kiln-server.js";

export function strongIsolationRequired(): boolean {
  return process.env.KILN_REQUIRE_STRONG_ISOLATION === "1";
}

/** A test that runs once `isStrong()` says the server under test has strong isolation. */
export function strongTest(name: string, isStrong: () => boolean, body: () => Promise<void>): void {
  test(name, async (t) => {
    if (!isStrong()) {
      assert.ok(!strongIsolationRequired(), "this host cannot give strong isolation, and CI requires it");
      return t.skip("this host cannot give strong isolation");
    }
    await body();
  });
}

/** Runs one task of `functionName` and waits for its end. */
export async function runTask(server: KilnServer, functionName: string, payload: unknown): Promise<Task> {
  const task = await server.client.createTask({ function: functionName, payload });
  return server.client.waitForTask(task.id, { timeoutS: 30 });
}

/** The next task of the node still runs: the hostile function's `ping` answers `pong`. */
export async function expectStillServing(server: KilnServer): Promise<void> {
  const task = await runTask(server, "hostile", { action: "ping" });
  assert.equal(task.state, "succeeded", "the next task on the node still runs");
  assert.equal(task.result, "pong");
}

/** Host processes owned by a sandbox uid whose command line contains `text`. */
export async function sandboxProcesses(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((entry) => /^\d+$/.test(entry))) {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ");
    if (isSandboxUid(uid) && cmdline.includes(text)) found.push(`${pid} ${cmdline}`);
  }
  return found;
}
