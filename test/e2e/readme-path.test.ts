/** The path the README walks a new user through, with the real `kiln` command. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runKiln } from "./kiln-cli.js";
import { startKilnServer } from "./kiln-server.js";

test(
  "kiln deploy examples/hello then kiln run hello --wait prints the greeting and exits 0",
  { timeout: 120_000 },
  async (t) => {
    const server = await startKilnServer({ examples: true });
    t.after(() => server.stop());

    const deployed = await runKiln(server, ["deploy", "examples/hello"]);
    assert.equal(deployed.code, 0, `deploy failed:\n${deployed.stdout}\n${deployed.stderr}`);
    assert.match(deployed.stdout, /Deployed hello at [0-9a-f]{12}/);

    const ran = await runKiln(server, ["run", "hello", '{"name":"x"}', "--wait"]);
    assert.equal(ran.code, 0, `run failed:\n${ran.stdout}\n${ran.stderr}`);
    assert.match(ran.stdout, /Hello, x!/);
    const result = JSON.parse(ran.stdout) as { greeting: string; attempt: number };
    assert.equal(result.greeting, "Hello, x!");
    assert.equal(result.attempt, 1);
  },
);
