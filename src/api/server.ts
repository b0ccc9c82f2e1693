/** The HTTP API: fastify with TypeBox schemas, bearer auth, one error shape and an OpenAPI document. */
import fastifySwagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyInstance } from "fastify";
import type { Cluster } from "../cluster/cluster.js";
import type { Config } from "../config/config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { KilnError } from "../domain/errors.js";
import type { Store } from "../store/store.js";
import { registerAuth } from "./auth.js";
import { registerErrorHandling } from "./error-handler.js";
import { functionRoutes } from "./routes/function-routes.js";
import { invokeRoutes } from "./routes/invoke-routes.js";
import { nodeRoutes } from "./routes/node-routes.js";
import { taskRoutes } from "./routes/task-routes.js";

export interface ApiOptions {
  store: Store;
  dispatcher: Dispatcher;
  cluster: Cluster;
  config: Readonly<Config>;
  token: string;
  /** What `/healthz` reports as the isolation level in force. */
  isolation: string;
  /** What `/healthz` reports of the node's sandboxes. */
  sandboxUsage: () => { sandboxes: number; reservedMb: number; reservedLongMb: number };
  /** Where deploys unpack archives while they are checked. */
  scratchDir: string;
  logger?: boolean;
}

export interface ApiContext extends ApiOptions {
  requireProject(project: string): Promise<void>;
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.config.maxRequestBytes,
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const context: ApiContext = {
    ...options,
    async requireProject(project) {
      if (!(await options.store.hasProject(project))) {
        throw new KilnError("PROJECT_NOT_FOUND", `no project '${project}'`);
      }
    },
  };

  app.addContentTypeParser(
    ["application/gzip", "application/x-gzip", "application/octet-stream"],
    { parseAs: "buffer" },
    (_request, body, done) => done(null, body),
  );
  registerErrorHandling(app);
  registerAuth(app, options.token);
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: "Kiln API", version: "1", description: "Deploy functions and run them as tasks." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });

  app.get("/healthz", { schema: { hide: true } }, () => ({
    status: "ok",
    node: options.cluster.nodeId,
    isolation: options.isolation,
    sandboxes: { ...options.sandboxUsage(), memoryBudgetMb: options.config.memoryBudgetMb },
  }));
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
  await app.register(functionRoutes(context));
  await app.register(taskRoutes(context));
  await app.register(invokeRoutes(context));
  await app.register(nodeRoutes(context));
  await app.ready();
  return app;
}
