/** The HTTP API: fastify with TypeBox schemas, bearer auth, one error shape and an OpenAPI document. */
import fastifySwagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Cluster } from "../cluster/cluster.js";
import type { Config } from "../config/config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import { KilnError } from "../domain/errors.js";
import { exceedsJsonDepth, maxJsonDepth } from "../domain/json-depth.js";
import type { Store } from "../store/store.js";
import { registerAuth } from "./auth.js";
import { answerFrameworkError, registerErrorHandling } from "./error-handler.js";
import { functionRoutes } from "./routes/function-routes.js";
import { invokeRoutes } from "./routes/invoke-routes.js";
import { nodeRoutes } from "./routes/node-routes.js";
import { ProjectPlans } from "./project-plans.js";
import { planRoutes } from "./routes/plan-routes.js";
import { projectRoutes } from "./routes/project-routes.js";
import { taskRoutes } from "./routes/task-routes.js";
import { tokenRoutes } from "./routes/token-routes.js";
import { StoredTokens } from "./stored-tokens.js";

export interface ApiOptions {
  store: Store;
  dispatcher: Dispatcher;
  cluster: Cluster;
  config: Readonly<Config>;
  /** The bootstrap admin token; tokens kept in the store work too. */
  token: string;
  /** What `/healthz` reports as the isolation level in force. */
  isolation: string;
  /** What `/healthz` reports of the node's sandboxes. */
  sandboxUsage: () => { sandboxes: number; reservedMb: number; reservedLongMb: number };
  /** Where deploys unpack archives while they are checked. */
  scratchDir: string;
  /** Where failures (every 500, with its request id) are logged; nothing is logged without one. */
  logger?: FastifyBaseLogger;
}

/**
 * How deeply a JSON body may nest: a task payload's own limit, the batch around it
 * (`{"tasks": [{"payload": …}]}`) and some slack, so that a payload a little too deep is refused by
 * name (`tasks[3].payload`). Deeper text is refused before it is parsed.
 */
const maxBodyDepth = maxJsonDepth + 10;

export interface ApiContext extends ApiOptions {
  requireProject(project: string): Promise<void>;
  plans: ProjectPlans;
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: answerFrameworkError,
    bodyLimit: options.config.maxRequestBytes,
    // Every failure of a request at once, in the user's words (see schema-errors.ts).
    ajv: { customOptions: { removeAdditional: false, allErrors: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const context: ApiContext = {
    ...options,
    plans: new ProjectPlans(options.store),
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
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (exceedsJsonDepth(text, maxBodyDepth)) {
      done(
        new KilnError(
          "JSON_TOO_DEEP",
          `the body nests arrays and objects more than ${maxBodyDepth} deep; a task payload may nest at most ${maxJsonDepth} deep`,
        ),
        undefined,
      );
      return;
    }
    void parseJson(request, text, done);
  });
  registerErrorHandling(app);
  // Half a second: a token revoked on one node is refused by every node within a second.
  registerAuth(app, options.token, new StoredTokens(options.store, { ttlMs: 500, logger: app.log }));
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
  await app.register(planRoutes(context));
  await app.register(projectRoutes(context));
  await app.register(tokenRoutes(context));
  await app.register(functionRoutes(context));
  await app.register(taskRoutes(context));
  await app.register(invokeRoutes(context));
  await app.register(nodeRoutes(context));
  await app.ready();
  return app;
}
