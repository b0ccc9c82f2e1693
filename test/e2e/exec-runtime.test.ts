/** The `exec` runtime: a Python command as a function, with the payload on stdin and the result on stdout. */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { packFunction } from "../../src/client/index.js";
import { repoRoot, startKilnServer } from "./kiln-server.js";

test(
  "examples/csv-summary summarises a CSV payload in Python and its stderr line lands in the task log",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer();
    t.after(() => server.stop());
    const { client } = server;
    const deployed = await client.deployFunction(
      "csv-summary",
      await packFunction(path.join(repoRoot, "examples", "csv-summary")),
    );
    assert.equal(deployed.function.runtime, "exec");

    const csv = "name,age\nada,36\ngrace,85\nalan,41\nkatherine,101\n";
    const task = await client.createTask({ function: "csv-summary", payload: csv });
    const done = await client.waitForTask(task.id, { timeoutS: 60 });

    assert.equal(done.state, "succeeded", `failure: ${JSON.stringify(done.failure)}`);
    const result = done.result as {
      rows: number;
      columns: Record<string, { type: string; min?: number; max?: number; mean?: number; distinct?: number }>;
    };
    assert.equal(result.rows, 4);
    assert.deepEqual(result.columns.age, { type: "number", min: 36, max: 101, mean: 65.75 });
    assert.deepEqual(result.columns.name, { type: "text", distinct: 4 });

    const log = await client.getTaskLog(task.id);
    assert.match(log, new RegExp(`summarising ${csv.length} characters`));
  },
);
