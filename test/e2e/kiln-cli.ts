/** Runs the `kiln` command as a child process against a server under test. */
import { spawn } from "node:child_process";
import { kilnBin, repoRoot, type KilnServer } from "./kiln-server.js";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `kiln <args>` from the repository root with KILN_URL and KILN_DATA_DIR pointing at `server`
 * (so the CLI finds the admin token the way a user's does). Rejects if it runs past `timeoutMs`.
 */
export function runKiln(server: KilnServer, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("KILN_")));
  const child = spawn(process.execPath, [kilnBin, ...args], {
    cwd: repoRoot,
    env: { ...env, KILN_URL: server.url, KILN_DATA_DIR: server.dataDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`kiln ${args.join(" ")} ran past ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
