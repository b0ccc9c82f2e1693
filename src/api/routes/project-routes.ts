/** Routes that create, list, show, change and delete projects. */
import { randomBytes } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import { canSeeProject } from "../access.js";
import { presentProject } from "../present.js";
import { checkProjectsFitPlan } from "../project-plans.js";
import { CreateProjectBody, DeleteProjectQuery, ProjectParams, ProjectPatch } from "../schemas.js";
import type { ApiContext } from "../server.js";

/** Every node creates it at start; tools fall back to it. */
const defaultProject = "default";

/** How long a delete with `cancelTasks` waits for the cancelled running tasks to end. */
const cancelledTasksEndMs = 10_000;

export function projectRoutes(context: ApiContext): FastifyPluginAsyncTypebox {
  const { store, dispatcher } = context;

  function notFound(project: string): KilnError {
    return new KilnError("PROJECT_NOT_FOUND", `no project '${project}'`);
  }

  /** Cancels every queued, delayed and running task of the project, then waits (bounded) for them to end. */
  async function cancelUnfinishedTasks(project: string): Promise<void> {
    for (const state of ["delayed", "queued", "running"] as const) {
      let cursor: string | null = null;
      do {
        const page = await store.listTasks({
          project,
          state,
          limit: 500,
          ...(cursor === null ? {} : { cursor }),
        });
        await Promise.all(page.tasks.map((task) => dispatcher.cancel(project, task.id)));
        cursor = page.nextCursor;
      } while (cursor !== null);
    }
    const deadline = Date.now() + cancelledTasksEndMs;
    while ((await store.countProjectContents(project)).unfinishedTasks > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Puts the project on `plan` (null: none) unless one of its functions is over the plan's limits. */
  async function putOnPlan(project: string, plan: string | null): Promise<void> {
    if (plan !== null) {
      const record = await store.getPlan(plan);
      if (record === null) throw new KilnError("PLAN_NOT_FOUND", `no plan '${plan}'`);
      await checkProjectsFitPlan(store, plan, record.limits, [project]);
    }
    const result = await store.setProjectPlan(project, plan, new Date());
    if (result === "project_not_found") throw notFound(project);
    if (result === "plan_not_found") throw new KilnError("PLAN_NOT_FOUND", `no plan '${plan ?? ""}'`);
    context.plans.forget();
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/projects",
      { schema: { body: CreateProjectBody, summary: "Create a project" }, config: { access: "admin" } },
      async (request, reply) => {
        const { name, description = "" } = request.body;
        const project = await store.createProject(name, description, new Date());
        if (project === null)
          throw new KilnError("PROJECT_EXISTS", `a project named '${name}' exists already`);
        return reply.status(201).send(presentProject(project));
      },
    );

    app.get(
      "/v1/projects",
      { schema: { summary: "List the projects the token may see" }, config: { access: "read" } },
      async (request) => {
        const projects = await store.listProjects();
        return {
          projects: projects
            .filter((project) => canSeeProject(request.principal, project.name))
            .map((project) => presentProject(project)),
        };
      },
    );

    app.get(
      "/v1/projects/:project",
      {
        schema: { params: ProjectParams, summary: "A project and what it holds" },
        config: { access: "read" },
      },
      async (request) => {
        const project = await store.getProject(request.params.project);
        if (project === null) throw notFound(request.params.project);
        const plan = project.plan === null ? null : await store.getPlan(project.plan);
        return presentProject(project, await store.countProjectContents(project.name), plan);
      },
    );

    app.patch(
      "/v1/projects/:project",
      { schema: { params: ProjectParams, body: ProjectPatch }, config: { access: "admin" } },
      async (request) => {
        const { project } = request.params;
        const { plan, ...change } = request.body;
        if (plan !== undefined) await putOnPlan(project, plan);
        const updated = await store.updateProject(project, change, new Date());
        if (updated === null) throw notFound(project);
        return presentProject(updated);
      },
    );

    app.get(
      "/v1/projects/:project/callback-secret",
      {
        schema: { params: ProjectParams, summary: "The key the project's callbacks are signed with" },
        config: { access: "deploy" },
      },
      async (request) => {
        const secret = await store.callbackSecret(request.params.project, newCallbackSecret());
        if (secret === null) throw notFound(request.params.project);
        return { secret };
      },
    );

    app.post(
      "/v1/projects/:project/callback-secret/rotate",
      {
        schema: {
          params: ProjectParams,
          summary: "Replace the callback key: every node signs with the new one within 5 s",
        },
        config: { access: "deploy" },
      },
      async (request) => {
        const secret = newCallbackSecret();
        if (!(await store.rotateCallbackSecret(request.params.project, secret, new Date()))) {
          throw notFound(request.params.project);
        }
        return { secret };
      },
    );

    app.delete(
      "/v1/projects/:project",
      {
        schema: {
          params: ProjectParams,
          querystring: DeleteProjectQuery,
          summary: "Delete a project with its functions, tasks and tokens",
        },
        config: { access: "admin" },
      },
      async (request, reply) => {
        const { project } = request.params;
        if (project === defaultProject) {
          const message = `the '${defaultProject}' project always exists and cannot be deleted`;
          throw new KilnError("BAD_REQUEST", message, {
            details: { errors: [{ field: "project", message }] },
          });
        }
        const functions = await store.listFunctions(project);
        if (request.query.cancelTasks === true) await cancelUnfinishedTasks(project);
        const result = await store.deleteProject(project);
        if (!result.deleted && result.reason === "not_found") throw notFound(project);
        if (!result.deleted) {
          throw new KilnError(
            "PROJECT_HAS_TASKS",
            `project '${project}' has ${result.unfinishedTasks} queued, delayed or running tasks; ` +
              "cancel them first, or delete with cancelTasks=true",
            { details: { unfinishedTasks: result.unfinishedTasks } },
          );
        }
        // Every node drops what it cached of the functions and stops their sandboxes.
        await Promise.all(functions.map((fn) => dispatcher.functionChanged(project, fn.name, true)));
        return reply.status(204).send();
      },
    );
  };
}

function newCallbackSecret(): string {
  return randomBytes(32).toString("base64url");
}
