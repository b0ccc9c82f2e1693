/** Routes that create, list, show, change and delete plans (admin tokens only). */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import { noLimits, type PlanLimits } from "../../domain/plan.js";
import { presentPlan } from "../present.js";
import { checkProjectsFitPlan } from "../project-plans.js";
import { CreatePlanBody, PlanParams, PlanPatch } from "../schemas.js";
import type { ApiContext } from "../server.js";

export function planRoutes(context: ApiContext): FastifyPluginAsyncTypebox {
  const { store, plans } = context;

  function notFound(plan: string): KilnError {
    return new KilnError("PLAN_NOT_FOUND", `no plan '${plan}'`);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/plans",
      {
        schema: { body: CreatePlanBody, summary: "Create a plan: limits for the projects put on it" },
        config: { access: "admin" },
      },
      async (request, reply) => {
        const { name, ...limits } = request.body;
        const plan = await store.createPlan(name, { ...noLimits, ...limits }, new Date());
        if (plan === null) throw new KilnError("PLAN_EXISTS", `a plan named '${name}' exists already`);
        return reply.status(201).send(presentPlan(plan));
      },
    );

    app.get(
      "/v1/plans",
      { schema: { summary: "List the plans" }, config: { access: "admin" } },
      async () => ({
        plans: (await store.listPlans()).map((plan) => presentPlan(plan)),
      }),
    );

    app.get(
      "/v1/plans/:plan",
      {
        schema: { params: PlanParams, summary: "A plan and the projects on it" },
        config: { access: "admin" },
      },
      async (request) => {
        const plan = await store.getPlan(request.params.plan);
        if (plan === null) throw notFound(request.params.plan);
        return presentPlan(plan, await store.listProjectsOnPlan(plan.name));
      },
    );

    app.patch(
      "/v1/plans/:plan",
      {
        schema: {
          params: PlanParams,
          body: PlanPatch,
          summary:
            "Change a plan's limits (null removes one); refused if a function of a project on it would be over them",
        },
        config: { access: "admin" },
      },
      async (request) => {
        const current = await store.getPlan(request.params.plan);
        if (current === null) throw notFound(request.params.plan);
        const limits: PlanLimits = { ...current.limits, ...request.body };
        await checkProjectsFitPlan(store, current.name, limits, await store.listProjectsOnPlan(current.name));
        const updated = await store.updatePlan(current.name, limits, new Date());
        if (updated === null) throw notFound(current.name);
        plans.forget();
        return presentPlan(updated);
      },
    );

    app.delete(
      "/v1/plans/:plan",
      {
        schema: { params: PlanParams, summary: "Delete a plan no project is on" },
        config: { access: "admin" },
      },
      async (request, reply) => {
        const { plan } = request.params;
        const result = await store.deletePlan(plan);
        if (result === "not_found") throw notFound(plan);
        if (result === "in_use") {
          const projects = await store.listProjectsOnPlan(plan);
          throw new KilnError(
            "PLAN_IN_USE",
            `projects are on plan '${plan}' (${projects.join(", ")}); move them to another plan first`,
            { details: { projects } },
          );
        }
        return reply.status(204).send();
      },
    );
  };
}
