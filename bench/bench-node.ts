/**
 * A Kiln node in its own process for the benchmark, so the load generator does not share its event loop.
 * Arguments: `<dataDir> <maxWorkers> [<databaseUrl> <databaseSchema>]` (PostgreSQL when a URL is given).
 * Sends `{ url }` once it listens; closes when the parent disconnects.
 */
import { loadConfig } from "../src/config/config.js";
import { startNode } from "../src/main.js";

const [dataDir, maxWorkers, database, databaseSchema] = process.argv.slice(2);
const node = await startNode(
  loadConfig({
    dataDir,
    port: 0,
    maxWorkers: Number(maxWorkers ?? 16),
    token: "bench",
    ...(database === undefined ? {} : { database, databaseSchema: databaseSchema ?? "kiln" }),
  }),
);
process.send?.({ url: node.url });
process.on("disconnect", () => void node.close().then(() => process.exit(0)));
