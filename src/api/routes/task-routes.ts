/** Routes that create, list, wait for, cancel and retry tasks. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import { limits } from "../../domain/function-settings.js";
import { isFinal, type Task } from "../../domain/task.js";
import { checkCallbackUrls, prepareTasks } from "../prepare-tasks.js";
import { presentTask } from "../present.js";
import {
  CreateTasksBody,
  GetTaskQuery,
  ProjectParams,
  TaskListQuery,
  TaskParams,
  WaitQuery,
} from "../schemas.js";
import type { ApiContext } from "../server.js";

export function taskRoutes(context: ApiContext): FastifyPluginAsyncTypebox {
  const { store, dispatcher, config } = context;

  async function requireTask(project: string, id: string): Promise<Task> {
    await context.requireProject(project);
    const task = await store.getTask(project, id);
    if (task === null) throw new KilnError("TASK_NOT_FOUND", `no task '${id}' in project '${project}'`);
    return task;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/projects/:project/tasks",
      {
        schema: { params: ProjectParams, body: CreateTasksBody, summary: "Create one task or a batch" },
        config: { access: "run" },
        // Validation reports every failure; an oversized batch is refused before it is looked at item by item.
        preValidation: (request, _reply, done) => done(refuseOversizedBatch(request.body)),
      },
      async (request, reply) => {
        const { project } = request.params;
        await context.requireProject(project);
        const batch = "tasks" in request.body;
        const inputs = "tasks" in request.body ? request.body.tasks : [request.body];
        checkCallbackUrls(inputs, config.callbackAllowPrivate);
        const results = await dispatcher.enqueue(
          await prepareTasks(store, config.maxPayloadBytes, await context.plans.of(project), project, inputs),
        );
        const tasks = results.map(({ task, created }) => presentTask(task, created));
        return reply.status(201).send(batch ? { tasks } : { task: tasks[0] });
      },
    );

    app.get(
      "/v1/projects/:project/tasks",
      { schema: { params: ProjectParams, querystring: TaskListQuery }, config: { access: "read" } },
      async (request) => {
        const { project } = request.params;
        await context.requireProject(project);
        const query = request.query;
        const page = await store.listTasks({
          project,
          limit: query.limit ?? 100,
          ...(query.function === undefined ? {} : { functionName: query.function }),
          ...(query.state === undefined ? {} : { state: query.state }),
          ...(query.label === undefined ? {} : { label: query.label }),
          ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
        });
        return { tasks: page.tasks.map((task) => presentTask(task)), nextCursor: page.nextCursor };
      },
    );

    app.get(
      "/v1/projects/:project/tasks/:id",
      {
        schema: {
          params: TaskParams,
          querystring: GetTaskQuery,
          summary: "Get a task; with `wait`, as soon as it is final (long poll, bounded)",
        },
        config: { access: "read" },
      },
      async (request) => {
        const { project, id } = request.params;
        const task = await requireTask(project, id);
        if (request.query.wait === undefined) return presentTask(task);
        const waited = await dispatcher.waitForTask(project, id, request.query.wait * 1000);
        return presentTask(waited ?? task);
      },
    );

    app.get(
      "/v1/projects/:project/tasks/:id/wait",
      {
        schema: {
          params: TaskParams,
          querystring: WaitQuery,
          summary: "Wait until the task is final (bounded)",
        },
        config: { access: "read" },
      },
      async (request) => {
        const { project, id } = request.params;
        await requireTask(project, id);
        const task = await dispatcher.waitForTask(project, id, (request.query.timeoutS ?? 30) * 1000);
        if (task === null) throw new KilnError("TASK_NOT_FOUND", `no task '${id}' in project '${project}'`);
        return presentTask(task);
      },
    );

    app.get(
      "/v1/projects/:project/tasks/:id/log",
      { schema: { params: TaskParams }, config: { access: "read" } },
      async (request, reply) => {
        const { project, id } = request.params;
        await requireTask(project, id);
        const log = (await store.getTaskLog(project, id)) ?? "";
        return reply.type("text/plain; charset=utf-8").send(log);
      },
    );

    app.post(
      "/v1/projects/:project/tasks/:id/cancel",
      { schema: { params: TaskParams }, config: { access: "run" } },
      async (request) => {
        const { project, id } = request.params;
        const task = await requireTask(project, id);
        if (task.state !== "running" && task.state !== "queued" && task.state !== "delayed") {
          throw new KilnError("TASK_ALREADY_FINISHED", `task '${id}' already ended ${task.state}`);
        }
        const cancelled = await dispatcher.cancel(project, id);
        return presentTask(cancelled ?? task);
      },
    );

    app.post(
      "/v1/projects/:project/tasks/:id/retry",
      { schema: { params: TaskParams }, config: { access: "run" } },
      async (request) => {
        const { project, id } = request.params;
        const task = await requireTask(project, id);
        const requeued = isFinal(task.state) ? await dispatcher.retry(project, id) : null;
        if (requeued === null || requeued.state !== "queued") {
          throw new KilnError(
            "TASK_NOT_FINISHED",
            `task '${id}' is ${task.state}; only a finished task can be retried`,
          );
        }
        return presentTask(requeued);
      },
    );
  };
}

function refuseOversizedBatch(body: unknown): KilnError | undefined {
  const tasks = typeof body === "object" && body !== null ? (body as { tasks?: unknown }).tasks : undefined;
  if (!Array.isArray(tasks) || tasks.length <= limits.batchSize) return undefined;
  const message = `tasks: at most ${limits.batchSize} tasks per call (got ${tasks.length})`;
  return new KilnError("BAD_REQUEST", message, { details: { errors: [{ field: "tasks", message }] } });
}
