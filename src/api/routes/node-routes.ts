/** The nodes of this Kiln: those sharing its database, with their leases. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { ApiContext } from "../server.js";

export function nodeRoutes({ cluster }: ApiContext): FastifyPluginAsyncTypebox {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.get(
      "/v1/nodes",
      { schema: { summary: "List the nodes and their leases" }, config: { access: "admin" } },
      async () => {
        const nodes = await cluster.listNodes();
        return {
          self: cluster.nodeId,
          nodes: nodes.map((node) => ({
            id: node.id,
            startedAt: node.startedAt.toISOString(),
            heartbeatAt: node.heartbeatAt.toISOString(),
            leaseExpiresAt: node.leaseExpiresAt.toISOString(),
            alive: node.alive,
          })),
        };
      },
    );
  };
}
