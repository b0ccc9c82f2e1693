/** Routes that deploy, list, change and roll back functions. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import type { FunctionRecord } from "../../store/store.js";
import { tierFor } from "../../runner/memory-tiers.js";
import { aboveLargestTier, deployFunction } from "../deploy-function.js";
import { planViolations } from "../../domain/plan.js";
import { presentFunction, presentRevision } from "../present.js";
import { overPlanLimit } from "../project-plans.js";
import { FunctionParams, FunctionPatch, ProjectParams, RollbackBody } from "../schemas.js";
import type { ApiContext } from "../server.js";

export function functionRoutes(context: ApiContext): FastifyPluginAsyncTypebox {
  const { store, dispatcher, config } = context;

  async function requireFunction(project: string, name: string): Promise<FunctionRecord> {
    await context.requireProject(project);
    const fn = await store.getFunction(project, name);
    if (fn === null)
      throw new KilnError("FUNCTION_NOT_FOUND", `no function '${name}' in project '${project}'`);
    return fn;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.put(
      "/v1/projects/:project/functions/:name",
      {
        schema: { params: FunctionParams, summary: "Deploy a function directory (tar.gz) as a new revision" },
        config: { access: "deploy" },
      },
      async (request, reply) => {
        const { project, name } = request.params;
        await context.requireProject(project);
        if (!Buffer.isBuffer(request.body)) {
          throw new KilnError(
            "UNSUPPORTED_MEDIA_TYPE",
            "send the function as a tar.gz with Content-Type application/gzip",
          );
        }
        const deployed = await deployFunction(store, {
          project,
          name,
          archive: request.body,
          scratchDir: context.scratchDir,
          memoryTiersMb: config.memoryTiersMb,
          archiveLimits: config,
          plan: await context.plans.of(project),
        });
        await dispatcher.functionChanged(project, name, false);
        return reply.status(deployed.created ? 201 : 200).send({
          function: presentFunction(deployed.function),
          revision: presentRevision(deployed.revision, deployed.function.currentRevision),
          created: deployed.created,
        });
      },
    );

    app.get(
      "/v1/projects/:project/functions",
      { schema: { params: ProjectParams }, config: { access: "read" } },
      async (request) => {
        await context.requireProject(request.params.project);
        return { functions: (await store.listFunctions(request.params.project)).map(presentFunction) };
      },
    );

    app.get(
      "/v1/projects/:project/functions/:name",
      { schema: { params: FunctionParams }, config: { access: "read" } },
      async (request) => presentFunction(await requireFunction(request.params.project, request.params.name)),
    );

    app.patch(
      "/v1/projects/:project/functions/:name",
      { schema: { params: FunctionParams, body: FunctionPatch }, config: { access: "deploy" } },
      async (request) => {
        const { project, name } = request.params;
        const fn = await requireFunction(project, name);
        const { memoryMb } = request.body;
        if (memoryMb !== undefined && tierFor(memoryMb, config.memoryTiersMb) === null) {
          throw new KilnError("BAD_REQUEST", aboveLargestTier(memoryMb, config.memoryTiersMb));
        }
        const settings = { ...fn.settings, ...request.body };
        const plan = await context.plans.of(project);
        const violations = planViolations(plan.limits, settings);
        if (plan.name !== null && violations.length > 0) throw overPlanLimit(plan.name, violations);
        const updated = await store.updateFunctionSettings(project, name, settings, new Date());
        if (updated === null)
          throw new KilnError("FUNCTION_NOT_FOUND", `no function '${name}' in project '${project}'`);
        const stale = request.body.env !== undefined || request.body.memoryMb !== undefined;
        await dispatcher.functionChanged(project, name, stale);
        return presentFunction(updated);
      },
    );

    app.get(
      "/v1/projects/:project/functions/:name/revisions",
      { schema: { params: FunctionParams }, config: { access: "read" } },
      async (request) => {
        const { project, name } = request.params;
        const fn = await requireFunction(project, name);
        const revisions = await store.listRevisions(project, name);
        return { revisions: revisions.map((revision) => presentRevision(revision, fn.currentRevision)) };
      },
    );

    app.post(
      "/v1/projects/:project/functions/:name/rollback",
      { schema: { params: FunctionParams, body: RollbackBody }, config: { access: "deploy" } },
      async (request) => {
        const { project, name } = request.params;
        await requireFunction(project, name);
        const fn = await store.setCurrentRevision(project, name, request.body.revision, new Date());
        if (fn === null) {
          throw new KilnError(
            "REVISION_NOT_FOUND",
            `function '${name}' has no revision ${request.body.revision}`,
          );
        }
        await dispatcher.functionChanged(project, name, false);
        return presentFunction(fn);
      },
    );
  };
}
