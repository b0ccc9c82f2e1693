/**
 * Synchronous invocation: the caller's request carries the payload and gets the result in its
 * response. Waiting is always bounded: `429` fast when no sandbox can take the task within the
 * admission budget, `202` with the task id when the task outlives the caller's `wait` budget.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply } from "fastify";
import { KilnError } from "../../domain/errors.js";
import { syncPriority, type Task } from "../../domain/task.js";
import { prepareTasks } from "../prepare-tasks.js";
import { presentTask } from "../present.js";
import { FunctionParams, InvokeQuery } from "../schemas.js";
import type { ApiContext } from "../server.js";

export function invokeRoutes(context: ApiContext): FastifyPluginAsyncTypebox {
  const { store, dispatcher, config } = context;

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    app.post(
      "/v1/projects/:project/functions/:name/invoke",
      {
        schema: {
          params: FunctionParams,
          querystring: InvokeQuery,
          summary: "Run the function and answer with its result (bounded wait)",
        },
        config: { access: "run" },
      },
      async (request, reply) => {
        const { project, name } = request.params;
        const waitMs = Math.min(request.query.wait ?? 30, config.maxInvokeWaitS) * 1000;
        await context.requireProject(project);
        if (Buffer.isBuffer(request.body)) {
          throw new KilnError("UNSUPPORTED_MEDIA_TYPE", "send the payload as application/json or text/plain");
        }
        const plan = await context.plans.of(project);
        const [task] = await prepareTasks(store, config.maxPayloadBytes, plan, project, [
          {
            function: name,
            payload: request.body ?? null,
            priority: syncPriority,
            ...(request.query.timeoutS === undefined ? {} : { timeoutS: request.query.timeoutS }),
          },
        ]);
        if (task === undefined) throw new Error("no task prepared");
        const startedMs = Date.now();
        // Awaited: wherever it runs, its start and end are announced to this node.
        const [enqueued] = await dispatcher.enqueue([{ ...task, awaited: true }]);
        if (request.query.cancelOnDisconnect === true) {
          reply.raw.once("close", () => {
            if (reply.raw.writableFinished) return;
            // Nobody awaits this promise: a failure must be logged here, or it would end the process.
            dispatcher.cancel(project, task.id).catch((error: unknown) => {
              request.log.warn({ err: error, taskId: task.id }, "cancelling on disconnect failed");
            });
          });
        }
        // A warm sandbox took the task in the enqueue's own commit: admitted already.
        const started = enqueued?.task.state === "running";
        if (
          !started &&
          !(await dispatcher.admit(project, task.id, Math.min(config.invokeAdmissionMs, waitMs)))
        ) {
          reply.header("Retry-After", "1");
          throw new KilnError(
            "TOO_MANY_REQUESTS",
            `no sandbox of '${name}' could take the invocation within its admission budget`,
            { details: { taskId: task.id } },
          );
        }
        const done = await dispatcher.waitForTask(
          project,
          task.id,
          Math.max(0, waitMs - (Date.now() - startedMs)),
        );
        if (done === null) throw new KilnError("TASK_NOT_FOUND", `task '${task.id}' vanished`);
        return answer(reply, done);
      },
    );
  };
}

function answer(reply: FastifyReply, task: Task) {
  reply.header("Kiln-Task-Id", task.id);
  const attempt = task.attempts.at(-1);
  if (attempt !== undefined) reply.header("Kiln-Attempt", String(attempt.number));
  if (task.startLatencyMs !== null) reply.header("Kiln-Start-Latency-Ms", String(task.startLatencyMs));
  const location = `/v1/projects/${task.project}/tasks/${task.id}`;
  switch (task.state) {
    case "succeeded":
      return typeof task.result === "string"
        ? reply.type("text/plain; charset=utf-8").send(task.result)
        : reply.type("application/json").send(JSON.stringify(task.result));
    case "delayed":
    case "queued":
    case "running":
      return reply
        .status(202)
        .header("Location", location)
        .send({ task: presentTask(task), resultUrl: `${location}?wait=30` });
    case "failed":
    case "timed_out":
    case "out_of_memory":
    case "cancelled": {
      const code = task.state === "timed_out" ? "FUNCTION_TIMED_OUT" : "FUNCTION_FAILED";
      reply.header("Kiln-Function-Error", task.failure?.kind ?? task.state);
      throw new KilnError(code, task.failure?.message ?? `the task ended ${task.state}`, {
        details: { taskId: task.id, state: task.state, failure: task.failure },
      });
    }
  }
}
