/** The Kiln SDK: one typed method per route of the HTTP API (docs/api.md). */
import type {
  ApiToken,
  CreatedToken,
  DeployResult,
  FunctionPatch,
  Health,
  InvokeOptions,
  InvokeOutcome,
  InvokePending,
  KilnFunction,
  Plan,
  PlanLimits,
  PlanWithProjects,
  Project,
  ProjectPatch,
  ProjectWithUsage,
  Revision,
  Task,
  TaskInput,
  TaskPage,
  TaskQuery,
  TaskState,
  TokenInput,
} from "./api-types.js";
import { createAdminMethods } from "./admin-methods.js";
import { KilnApiError } from "./kiln-api-error.js";
import { createTransport, type RawResponse } from "./transport.js";

export interface ClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:7878`. */
  url: string;
  /** Bearer token; only `health()` works without one. */
  token?: string | null;
  /** Project every call uses unless told otherwise. Default `"default"`. */
  project?: string;
  /** Milliseconds a request may take before it fails with `NETWORK_ERROR`. Default 60,000. */
  requestTimeoutMs?: number;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof globalThis.fetch;
}

export interface KilnClient {
  /** The project calls go to. */
  readonly project: string;
  /** `GET /healthz` (no token needed): resolves when the server is up. */
  health(): Promise<Health>;
  /**
   * Uploads a function directory packed as tar.gz. Settings come from `kiln.json` inside it.
   * `created` is false when the content equals the current revision.
   */
  deployFunction(name: string, archive: Uint8Array, options?: { project?: string }): Promise<DeployResult>;
  listFunctions(): Promise<KilnFunction[]>;
  getFunction(name: string): Promise<KilnFunction>;
  /** Changes settings; `env` replaces the whole map. */
  updateFunction(name: string, patch: FunctionPatch): Promise<KilnFunction>;
  /** Newest first. */
  listRevisions(name: string): Promise<Revision[]>;
  /** Makes an earlier revision (by full digest) the current one. */
  rollbackFunction(name: string, revision: string): Promise<KilnFunction>;
  /** Resolves once the task is stored durably; it runs later. */
  createTask(input: TaskInput): Promise<Task>;
  /**
   * Creates many tasks, in requests of at most `batchSize` (default and maximum 10,000). Resolves with
   * the tasks in input order. If a request fails, the batches before it stay created; give each input
   * an `idempotencyKey` to make a retry of the whole call safe.
   */
  createTasks(
    inputs: readonly TaskInput[],
    options?: { batchSize?: number; onProgress?: (sent: number, total: number) => void },
  ): Promise<Task[]>;
  /**
   * Runs the function and waits for its result, within the server's bounds: one request, no polling.
   * The payload is sent as JSON (a string becomes a JSON string; `undefined` sends none, so the handler
   * gets `null`). Resolves `succeeded` with the result, or `pending` when the task outlives `waitS`
   * (it keeps running: follow it with `waitForTask`). Throws `KilnApiError` with code:
   * - `TOO_MANY_REQUESTS` (429): no sandbox could take the task within the server's admission budget
   *   (the function is at its `maxConcurrency`, paused, or the node is full). The task was cancelled;
   *   `retryAfterS` says when to try again.
   * - `FUNCTION_FAILED` (502): the function threw, crashed, ran out of memory or was cancelled;
   * - `FUNCTION_TIMED_OUT` (504): it ran past its timeout. For both, `details` is
   *   `{ taskId, state, failure: { kind, message, stack?, retryable } }`.
   * - `FUNCTION_NOT_FOUND` (404) at once for an unknown function.
   *
   * @example
   * const outcome = await kiln.invoke("resize-image", { width: 200 }, { waitS: 20 });
   * if (outcome.status === "succeeded") console.log(outcome.result);
   * else console.log(`still running: ${outcome.task.id}`);
   */
  invoke(name: string, payload?: unknown, options?: InvokeOptions): Promise<InvokeOutcome>;
  /**
   * The task as it is now; with `waitS` (0..60), the server holds the request until the task is final
   * or `waitS` seconds pass, whichever comes first (a long poll), and answers with the task as it then is.
   *
   * @example
   * const task = await kiln.getTask(id, { waitS: 30 });
   * if (isTaskFinal(task)) console.log(task.state, task.result);
   */
  getTask(id: string, options?: { waitS?: number }): Promise<Task>;
  /** One page of tasks, newest first. */
  listTasks(query?: TaskQuery): Promise<TaskPage>;
  /**
   * Waits until the task is final (`succeeded`, `failed`, `timed_out`, `out_of_memory`, `cancelled`) or
   * `timeoutS` seconds pass (default 60; `Infinity` waits for as long as it takes), long-polling the
   * server (`getTask` with `waitS`, up to 60 s a request), and resolves with the task as it then is:
   * check its `state`.
   */
  waitForTask(id: string, options?: { timeoutS?: number }): Promise<Task>;
  /** The task's stdout and stderr, all attempts. */
  getTaskLog(id: string): Promise<string>;
  cancelTask(id: string): Promise<Task>;
  /** Queues a finished task again. */
  retryTask(id: string): Promise<Task>;
  /** The projects the token may see, by name: all of them for an admin token, its own for a project token. */
  listProjects(): Promise<Project[]>;
  /**
   * Creates an empty project (admin token). Throws `KilnApiError` with code `PROJECT_EXISTS` (409) when
   * the name is taken, `FORBIDDEN` (403) with a project token.
   */
  createProject(name: string, options?: { description?: string }): Promise<Project>;
  /**
   * The project (default: the client's) with its plan's limits (`limits`, null when it is on no plan)
   * and how many functions and unfinished tasks it holds. Any role of the project may read it;
   * `PROJECT_NOT_FOUND` (404) when it does not exist or is not the token's.
   */
  getProject(name?: string): Promise<ProjectWithUsage>;
  /**
   * Changes the description, or the plan the project is on (`plan: null` takes it off), with an admin
   * token. Throws `KilnApiError` with code `OVER_PLAN_LIMIT` (400) when a function of the project is over
   * the plan's limits (`details.errors` names each; nothing changes), `PLAN_NOT_FOUND` (404) for an
   * unknown plan, `PROJECT_NOT_FOUND` (404), `FORBIDDEN` (403).
   *
   * @example
   * await kiln.updateProject("shop", { plan: "small" });
   */
  updateProject(name: string, patch: ProjectPatch): Promise<Project>;
  /**
   * Deletes the project with its functions, revisions, tasks and tokens (admin token). Throws
   * `KilnApiError` with code `PROJECT_HAS_TASKS` (409, `details.unfinishedTasks`) while it has queued,
   * delayed or running tasks, unless `cancelTasks` is true: then the server cancels them first and waits
   * up to 10 s for running ones to end. `PROJECT_NOT_FOUND` (404), `FORBIDDEN` (403).
   *
   * @example
   * await kiln.deleteProject("staging", { cancelTasks: true });
   */
  deleteProject(name: string, options?: { cancelTasks?: boolean }): Promise<void>;
  /**
   * The key the project's callbacks are signed with (`Kiln-Signature`, see docs/api.md); defaults to
   * the client's project. Needs an admin token or role `deploy`.
   */
  getCallbackSecret(project?: string): Promise<string>;
  /** Replaces the project's callback key and resolves with the new one (every node uses it within 5 s). */
  rotateCallbackSecret(project?: string): Promise<string>;
  /**
   * Creates a token (admin token) and resolves with its secret, which no later call shows again. Throws
   * `KilnApiError` with code `BAD_REQUEST` (400) when `project` is missing for a project role or given
   * for `admin`, `PROJECT_NOT_FOUND` (404) for an unknown project, `FORBIDDEN` (403) with a project token.
   *
   * @example
   * const { token, secret } = await kiln.createToken({ name: "ci", role: "deploy", project: "shop" });
   * // Hand `secret` to CI as KILN_TOKEN; `token.id` is what revokeToken takes.
   */
  createToken(input: TokenInput): Promise<CreatedToken>;
  /** Tokens newest first, revoked ones too; `project` keeps those of one project (admin token). */
  listTokens(options?: { project?: string }): Promise<ApiToken[]>;
  /**
   * Revokes the token (admin token): every node refuses it within a second. Resolves with it, `revokedAt`
   * set; revoking it again changes nothing. `TOKEN_NOT_FOUND` (404) for an unknown id.
   */
  revokeToken(id: string): Promise<ApiToken>;
  /** Every plan, by name (admin token). */
  listPlans(): Promise<Plan[]>;
  /**
   * Creates a plan (admin token): limits the projects put on it are held to, on every node within a
   * second. A limit left out or null is not set. Throws `KilnApiError` with code `PLAN_EXISTS` (409)
   * when the name is taken, `FORBIDDEN` (403) with a project token.
   *
   * @example
   * await kiln.createPlan("small", { maxMemoryMb: 256, maxTimeoutS: 60 });
   * await kiln.updateProject("shop", { plan: "small" });
   */
  createPlan(name: string, limits?: Partial<PlanLimits>): Promise<Plan>;
  /** The plan with the names of the projects on it (admin token). `PLAN_NOT_FOUND` (404). */
  getPlan(name: string): Promise<PlanWithProjects>;
  /**
   * Changes the limits given (null removes one) and keeps the others (admin token); every node holds
   * the plan's projects to them within a second. Throws `KilnApiError` with code `OVER_PLAN_LIMIT` (400)
   * when a function of a project on the plan would be over them (`details.errors` names each; nothing
   * changes), `PLAN_NOT_FOUND` (404).
   */
  updatePlan(name: string, limits: Partial<PlanLimits>): Promise<Plan>;
  /**
   * Deletes the plan (admin token). Throws `KilnApiError` with code `PLAN_IN_USE` (409,
   * `details.projects` names them) while projects are on it, `PLAN_NOT_FOUND` (404).
   */
  deletePlan(name: string): Promise<void>;
}

/** The most tasks the server takes in one request. */
export const maxTasksPerRequest = 10_000;

/** The longest wait the server holds one `GET` of a task for. */
const maxServerWaitS = 60;

/** The invoke wait the server uses when the caller gives none. */
const defaultInvokeWaitS = 30;

const minWaitRoundMs = 500;

const unfinishedStates: ReadonlySet<TaskState> = new Set(["delayed", "queued", "running"]);

/** True once the task will not change state again (unless retried). */
export function isTaskFinal(task: Pick<Task, "state">): boolean {
  return !unfinishedStates.has(task.state);
}

/**
 * Creates a client for one Kiln server. Every method throws `KilnApiError` on failure. Times in the
 * returned objects are ISO 8601 strings.
 *
 * @example
 * const kiln = createClient({ url: "http://127.0.0.1:7878", token: process.env.KILN_TOKEN });
 * const task = await kiln.createTask({ function: "resize-image", payload: { width: 200 } });
 * const done = await kiln.waitForTask(task.id, { timeoutS: 120 });
 * if (done.state === "succeeded") console.log(done.result);
 *
 * // Or run it and get the result in one request (bounded: see `invoke`):
 * const outcome = await kiln.invoke("resize-image", { width: 200 });
 * if (outcome.status === "succeeded") console.log(outcome.result);
 */
export function createClient(options: ClientOptions): KilnClient {
  const project = options.project ?? "default";
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const transport = createTransport({
    url: options.url,
    token: options.token ?? null,
    requestTimeoutMs,
    fetch: options.fetch ?? globalThis.fetch,
  });
  const { requestJson } = transport;
  const projectPath = (name = project) => `/v1/projects/${encodeURIComponent(name)}`;
  const functionPath = (name: string) => `${projectPath()}/functions/${encodeURIComponent(name)}`;
  const taskPath = (id: string) => `${projectPath()}/tasks/${encodeURIComponent(id)}`;

  // A long poll holds the request for up to waitS: allow that plus the usual time for an answer.
  const longPollTimeoutMs = (waitS: number) => waitS * 1000 + requestTimeoutMs;

  function getTask(id: string, waitS: number | undefined): Promise<Task> {
    if (waitS === undefined) return requestJson("GET", taskPath(id));
    return requestJson("GET", taskPath(id), { query: { wait: waitS }, timeoutMs: longPollTimeoutMs(waitS) });
  }

  async function invoke(
    name: string,
    payload: unknown,
    invokeOptions: InvokeOptions,
  ): Promise<InvokeOutcome> {
    const { waitS, timeoutS, cancelOnDisconnect } = invokeOptions;
    const path = `${functionPath(name)}/invoke`;
    const response = await transport.request("POST", path, {
      query: {
        wait: waitS,
        timeoutS,
        cancelOnDisconnect: cancelOnDisconnect === undefined ? undefined : String(cancelOnDisconnect),
      },
      json: payload,
      timeoutMs: longPollTimeoutMs(waitS ?? defaultInvokeWaitS),
    });
    return readInvokeAnswer(`POST ${path}`, response);
  }

  return {
    project,
    health: () => requestJson("GET", "/healthz"),
    deployFunction: (name, archive, deployOptions = {}) =>
      requestJson("PUT", `${projectPath(deployOptions.project)}/functions/${encodeURIComponent(name)}`, {
        body: archive,
        contentType: "application/gzip",
      }),
    listFunctions: async () =>
      (await requestJson<{ functions: KilnFunction[] }>("GET", `${projectPath()}/functions`)).functions,
    getFunction: (name) => requestJson("GET", functionPath(name)),
    updateFunction: (name, patch) => requestJson("PATCH", functionPath(name), { json: patch }),
    listRevisions: async (name) =>
      (await requestJson<{ revisions: Revision[] }>("GET", `${functionPath(name)}/revisions`)).revisions,
    rollbackFunction: (name, revision) =>
      requestJson("POST", `${functionPath(name)}/rollback`, { json: { revision } }),
    createTask: async (input) =>
      (await requestJson<{ task: Task }>("POST", `${projectPath()}/tasks`, { json: input })).task,
    async createTasks(inputs, createOptions = {}) {
      const batchSize = Math.min(createOptions.batchSize ?? maxTasksPerRequest, maxTasksPerRequest);
      if (!(batchSize >= 1)) throw new RangeError(`batchSize must be at least 1, got ${batchSize}`);
      const created: Task[] = [];
      for (let start = 0; start < inputs.length; start += batchSize) {
        const batch = inputs.slice(start, start + batchSize);
        const answer = await requestJson<{ tasks: Task[] }>("POST", `${projectPath()}/tasks`, {
          json: { tasks: batch },
        });
        created.push(...answer.tasks);
        createOptions.onProgress?.(created.length, inputs.length);
      }
      return created;
    },
    invoke: (name, payload, invokeOptions = {}) => invoke(name, payload, invokeOptions),
    getTask: (id, getOptions = {}) => getTask(id, getOptions.waitS),
    listTasks: (query = {}) => requestJson("GET", `${projectPath()}/tasks`, { query: { ...query } }),
    async waitForTask(id, waitOptions = {}) {
      const deadlineMs = Date.now() + (waitOptions.timeoutS ?? 60) * 1000;
      for (;;) {
        const startedMs = Date.now();
        const remainingS = Math.max(0, Math.ceil((deadlineMs - startedMs) / 1000));
        const task = await getTask(id, Math.min(remainingS, maxServerWaitS));
        if (isTaskFinal(task) || Date.now() >= deadlineMs) return task;
        // A server that answers before its wait ends must not turn this loop into a busy one.
        const pauseMs = minWaitRoundMs - (Date.now() - startedMs);
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    },
    getTaskLog: (id) => transport.requestText("GET", `${taskPath(id)}/log`),
    cancelTask: (id) => requestJson("POST", `${taskPath(id)}/cancel`),
    retryTask: (id) => requestJson("POST", `${taskPath(id)}/retry`),
    ...createAdminMethods(transport, projectPath),
  };
}

/** 200: the result, typed by its content type, and the task's headers. 202: the pending task. */
function readInvokeAnswer(target: string, response: RawResponse): InvokeOutcome {
  const unexpected = (why: string, cause?: unknown) =>
    new KilnApiError("UNEXPECTED_RESPONSE", `${target} answered ${response.status} ${why}`, {
      status: response.status,
      details: { body: response.text.slice(0, 2000) },
      cause,
    });
  const parseBody = (): unknown => {
    try {
      return response.text === "" ? null : JSON.parse(response.text);
    } catch (error) {
      throw unexpected("with a body that is not JSON", error);
    }
  };
  if (response.status === 202) {
    const body = parseBody() as Partial<Omit<InvokePending, "status">> | null;
    if (body?.task === undefined || typeof body.resultUrl !== "string") {
      throw unexpected("without a task and its resultUrl");
    }
    return { status: "pending", task: body.task, resultUrl: body.resultUrl };
  }
  if (response.status !== 200) throw unexpected("(expected 200 or 202)");
  const taskId = response.headers.get("kiln-task-id");
  const attempt = Number(response.headers.get("kiln-attempt"));
  if (taskId === null || !Number.isInteger(attempt) || attempt < 1) {
    throw unexpected("without the Kiln-Task-Id and Kiln-Attempt headers");
  }
  const latencyMs = Number(response.headers.get("kiln-start-latency-ms") ?? Number.NaN);
  const mediaType = (response.headers.get("content-type") ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
  return {
    status: "succeeded",
    // The server answers a string result as text/plain and anything else as JSON.
    result: mediaType === "application/json" || mediaType.endsWith("+json") ? parseBody() : response.text,
    taskId,
    attempt,
    startLatencyMs: Number.isFinite(latencyMs) ? latencyMs : null,
  };
}
