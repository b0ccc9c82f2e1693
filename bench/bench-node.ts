/** A Kiln node in its own process for the benchmark, so the load generator does not share its event loop. */
import { loadConfig } from "../src/config/config.js";
import { startNode } from "../src/main.js";

const node = await startNode(
  loadConfig({
    dataDir: process.argv[2],
    port: 0,
    maxWorkers: Number(process.argv[3] ?? 16),
    token: "bench",
  }),
);
process.send?.({ url: node.url });
process.on("disconnect", () => void node.close().then(() => process.exit(0)));
