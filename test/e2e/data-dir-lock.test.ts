/** One node per data directory: a second is refused, and a node killed with kill -9 does not block the next. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { kilnBin, repoRoot, startKilnServer } from "./kiln-server.js";

async function serveOn(dataDir: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [kilnBin, "serve", "--data-dir", dataDir, "--port", "0", "--json"], {
    cwd: repoRoot,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

test(
  "a second node on a data directory in use is refused with the holder's pid; after kill -9 of the holder the next start succeeds",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());

    const second = await serveOn(server.dataDir);
    assert.equal(second.code, 1);
    assert.match(
      second.stderr,
      new RegExp(`DATA_DIR_IN_USE: .*in use by another Kiln node \\(pid ${server.pid}\\)`),
    );
    // The first node is unharmed.
    assert.equal((await server.client.health()).status, "ok");

    await server.kill9();
    await server.restart();
    assert.equal((await server.client.health()).status, "ok");
  },
);
