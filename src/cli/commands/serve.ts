/** `kiln serve`: runs a Kiln node in this process until SIGINT or SIGTERM. */
import path from "node:path";
import { loadConfig } from "../../config/config.js";
import { createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { writeJson, writeLine } from "../output.js";
import { parseIntegerFlag } from "../parse-integer-flag.js";

const options = {
  host: { type: "string" },
  port: { type: "string" },
  "max-workers": { type: "string" },
  examples: { type: "boolean" },
  isolation: { type: "string" },
  database: { type: "string" },
  "allow-weak-isolation": { type: "boolean" },
  "shutdown-grace": { type: "string" },
} as const;

export const serveCommand: Command = {
  name: "serve",
  summary: "run a Kiln server (API, dispatcher and workers) on this machine",
  usage: `Usage: kiln serve [--host H] [--port P] [--data-dir D] [--max-workers N] [--examples]

Runs a Kiln node until Ctrl-C. One node per data directory: a second one started on it is refused. On the first start it generates an admin token, prints it once and keeps
it in <data dir>/admin-token, where the other kiln commands on this machine find it.

  --host H          address to listen on (env KILN_HOST; default 127.0.0.1)
  --port P          port to listen on (env KILN_PORT; default 7878)
  --data-dir D      database, token and code (env KILN_DATA_DIR; default ./.kiln)
  --max-workers N   tasks this node runs at once; 0 for a node that only serves the API
                    (env KILN_MAX_WORKERS; default 16)
  --examples        deploy the functions under examples/ at start
  --database URL    keep the durable state in PostgreSQL (postgres://…) instead of <data dir>/kiln.db;
                    every node started on the same database is one Kiln (env KILN_DATABASE_URL)
  --isolation L     auto (default: the strongest the host offers), strong (refuse to start without it)
                    or process (development only) (env KILN_ISOLATION)
  --allow-weak-isolation
                    allow a non-loopback --host below strong isolation
  --token T         use this admin token instead of a generated one (env KILN_TOKEN)
  --shutdown-grace S
                    on Ctrl-C or SIGTERM, stop taking tasks and give running ones S seconds to finish,
                    then hand the rest back (queued again, not counted as lost); a second Ctrl-C stops
                    at once (env KILN_SHUTDOWN_GRACE_S; default 30). Tasks created meanwhile are accepted.`,

  async run(args) {
    const { values } = parseCommandArgs("serve", args, options, { required: [] });
    const config = loadConfig({
      host: values.host,
      port: parseIntegerFlag("serve", "port", values.port, { min: 0, max: 65_535 }),
      dataDir: values["data-dir"],
      maxWorkers: parseIntegerFlag("serve", "max-workers", values["max-workers"], { min: 0 }),
      token: values.token,
      deployExamples: values.examples,
      database: values.database,
      isolation: parseIsolation(values.isolation),
      allowWeakIsolation: values["allow-weak-isolation"],
      shutdownGraceS: parseIntegerFlag("serve", "shutdown-grace", values["shutdown-grace"], { min: 0 }),
    });
    const { startNode } = await import("../../main.js");
    const node = await startNode(config);
    const tokenFile = path.join(config.dataDir, "admin-token");
    if (values.json) {
      writeJson({
        url: node.url,
        isolation: node.isolation,
        warnings: node.warnings,
        adminToken: node.adminToken,
        tokenFile,
      });
    } else {
      writeLine(`Kiln is listening on ${node.url} (isolation: ${node.isolation} — ${node.isolationReason})`);
      if (node.adminToken !== null) {
        writeLine(`Admin token: ${node.adminToken}`);
        writeLine(`  shown once; stored in ${tokenFile}`);
      }
      for (const warning of node.warnings) process.stderr.write(`WARNING: ${warning}\n`);
      writeLine("Press Ctrl-C to stop.");
    }
    return new Promise<number>(() => {
      const stopNow = new AbortController();
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        // A third signal: exit without closing the database (running tasks are recovered as `lost`
        // at the next start).
        if (stopNow.signal.aborted) process.exit(1);
        // A second: the person does not want to wait. Running tasks are handed back at once, and the
        // node still closes its database cleanly.
        if (stopping) {
          process.stderr.write(`${signal}: stopping now\n`);
          stopNow.abort();
          return;
        }
        stopping = true;
        process.stderr.write(`${signal}: stopping; no new tasks start on this node\n`);
        node
          .close({
            graceMs: config.shutdownGraceS * 1000,
            signal: stopNow.signal,
            onWaiting: (running, remainingMs) =>
              process.stderr.write(
                `waiting for ${running} running task${running === 1 ? "" : "s"}, up to ` +
                  `${Math.ceil(remainingMs / 1000)} s; press Ctrl-C again to stop now\n`,
              ),
            onHandedBack: (count) =>
              process.stderr.write(
                `handed ${count} unfinished task${count === 1 ? "" : "s"} back to the queue\n`,
              ),
          })
          .then(
            () => process.exit(0),
            (error: unknown) => {
              process.stderr.write(`INTERNAL: could not stop cleanly: ${String(error)}\n`);
              process.exit(1);
            },
          );
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
  },
};

function parseIsolation(value: string | undefined): "auto" | "strong" | "process" | undefined {
  if (value === undefined || value === "auto" || value === "strong" || value === "process") return value;
  throw createUsageError(`--isolation must be auto, strong or process, got '${value}'`);
}
