/** Routes that create, list, wait for, cancel and retry tasks. */
import { randomUUID } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { KilnError } from "../../domain/errors.js";
import { isFinal, type Task } from "../../domain/task.js";
import type { FunctionRecord, NewTask } from "../../store/store.js";
import { presentTask } from "../present.js";
import {
  CreateTasksBody,
  ProjectParams,
  TaskListQuery,
  TaskParams,
  WaitQuery,
  type TaskInput,
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

  /** Checks the whole batch before anything is written: one bad task rejects them all. */
  async function prepareTasks(project: string, inputs: TaskInput[]): Promise<NewTask[]> {
    const functions = new Map<string, FunctionRecord>();
    for (const name of new Set(inputs.map((input) => input.function))) {
      const fn = await store.getFunction(project, name);
      if (fn === null) {
        throw new KilnError("FUNCTION_NOT_FOUND", `no function '${name}' in project '${project}'`, {
          details: { index: inputs.findIndex((input) => input.function === name) },
        });
      }
      functions.set(name, fn);
    }
    const now = new Date();
    return inputs.map((input, index): NewTask => {
      const payload = JSON.stringify(input.payload ?? null);
      const bytes = Buffer.byteLength(payload);
      if (bytes > config.maxPayloadBytes) {
        throw new KilnError(
          "PAYLOAD_TOO_LARGE",
          `task ${index}: the payload is ${bytes} bytes, over the limit of ${config.maxPayloadBytes}`,
          { details: { index, bytes, limit: config.maxPayloadBytes } },
        );
      }
      const fn = functions.get(input.function) as FunctionRecord;
      return {
        id: randomUUID(),
        project,
        functionName: input.function,
        revision: fn.currentRevision,
        priority: input.priority ?? 0,
        payload,
        label: input.label ?? null,
        idempotencyKey: input.idempotencyKey ?? null,
        timeoutS: input.timeoutS ?? fn.settings.timeoutS,
        createdAt: now,
        runAt: new Date(now.getTime() + Math.round((input.delayS ?? 0) * 1000)),
      };
    });
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/projects/:project/tasks",
      { schema: { params: ProjectParams, body: CreateTasksBody, summary: "Create one task or a batch" } },
      async (request, reply) => {
        const { project } = request.params;
        await context.requireProject(project);
        const batch = "tasks" in request.body;
        const inputs = "tasks" in request.body ? request.body.tasks : [request.body];
        const results = await dispatcher.enqueue(await prepareTasks(project, inputs));
        const tasks = results.map(({ task, created }) => presentTask(task, created));
        return reply.status(201).send(batch ? { tasks } : { task: tasks[0] });
      },
    );

    app.get(
      "/v1/projects/:project/tasks",
      { schema: { params: ProjectParams, querystring: TaskListQuery } },
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

    app.get("/v1/projects/:project/tasks/:id", { schema: { params: TaskParams } }, async (request) =>
      presentTask(await requireTask(request.params.project, request.params.id)),
    );

    app.get(
      "/v1/projects/:project/tasks/:id/wait",
      {
        schema: {
          params: TaskParams,
          querystring: WaitQuery,
          summary: "Wait until the task is final (bounded)",
        },
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
      { schema: { params: TaskParams } },
      async (request, reply) => {
        const { project, id } = request.params;
        await requireTask(project, id);
        const log = (await store.getTaskLog(project, id)) ?? "";
        return reply.type("text/plain; charset=utf-8").send(log);
      },
    );

    app.post(
      "/v1/projects/:project/tasks/:id/cancel",
      { schema: { params: TaskParams } },
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

    app.post("/v1/projects/:project/tasks/:id/retry", { schema: { params: TaskParams } }, async (request) => {
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
    });
  };
}
