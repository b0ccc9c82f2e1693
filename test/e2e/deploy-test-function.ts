/** The functions under test/e2e/functions/, and deploying them to a server under test. */
import path from "node:path";
import { packFunction, type DeployResult, type KilnClient } from "../../src/client/index.js";
import { repoRoot } from "./kiln-server.js";

/** The directory of a test function (test/e2e/functions/<name>). */
export function testFunctionDir(name: string): string {
  return path.join(repoRoot, "test", "e2e", "functions", name);
}

/** Packs test/e2e/functions/<name> and deploys it under the same name. */
export async function deployTestFunction(client: KilnClient, name: string): Promise<DeployResult> {
  return client.deployFunction(name, await packFunction(testFunctionDir(name)));
}
