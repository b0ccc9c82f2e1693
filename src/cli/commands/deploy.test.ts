/** `kiln deploy` run as a user runs it: the built CLI in a child process. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const kilnBin = fileURLToPath(new URL("../kiln.js", import.meta.url));

test("deploying an empty directory says the directory has no files, before calling any server", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-deploy-empty-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Nothing listens on port 9 (discard): had the CLI called the server, the error would be NETWORK_ERROR.
  const env = { ...process.env, KILN_URL: "http://127.0.0.1:9", KILN_TOKEN: "t" };
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [kilnBin, "deploy", dir],
      { env, timeout: 20_000 },
      (_, __, err) => resolve({ code: child.exitCode, stderr: err }),
    );
  });
  assert.notEqual(code, 0);
  assert.equal(
    stderr.trim(),
    `INVALID_FUNCTION_DIR: ${dir} has no files to deploy (.git and node_modules/.cache are left out)`,
  );
});
