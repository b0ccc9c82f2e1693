/** The Kiln SDK: one typed method per route of the HTTP API (docs/api.md). */
import type {
  DeployResult,
  FunctionPatch,
  Health,
  KilnFunction,
  Revision,
  Task,
  TaskInput,
  TaskPage,
  TaskQuery,
  TaskState,
} from "./api-types.js";
import { createTransport } from "./transport.js";

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
  getTask(id: string): Promise<Task>;
  /** One page of tasks, newest first. */
  listTasks(query?: TaskQuery): Promise<TaskPage>;
  /**
   * Waits until the task is final (`succeeded`, `failed`, `timed_out`, `cancelled`) or `timeoutS`
   * seconds pass (default 60; `Infinity` waits for as long as it takes), long-polling the server, and
   * resolves with the task as it then is: check its `state`.
   */
  waitForTask(id: string, options?: { timeoutS?: number }): Promise<Task>;
  /** The task's stdout and stderr, all attempts. */
  getTaskLog(id: string): Promise<string>;
  cancelTask(id: string): Promise<Task>;
  /** Queues a finished task again. */
  retryTask(id: string): Promise<Task>;
}

/** The most tasks the server takes in one request. */
export const maxTasksPerRequest = 10_000;

/** The longest wait the server holds one request for. */
const maxServerWaitS = 60;

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

  async function waitOnce(id: string, waitS: number): Promise<Task> {
    return requestJson<Task>("GET", `${taskPath(id)}/wait`, {
      query: { timeoutS: waitS },
      // The server holds the request for up to waitS: allow that plus the usual time for an answer.
      timeoutMs: waitS * 1000 + requestTimeoutMs,
    });
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
    getTask: (id) => requestJson("GET", taskPath(id)),
    listTasks: (query = {}) => requestJson("GET", `${projectPath()}/tasks`, { query: { ...query } }),
    async waitForTask(id, waitOptions = {}) {
      const deadlineMs = Date.now() + (waitOptions.timeoutS ?? 60) * 1000;
      for (;;) {
        const startedMs = Date.now();
        const remainingS = Math.max(0, Math.ceil((deadlineMs - startedMs) / 1000));
        const task = await waitOnce(id, Math.min(remainingS, maxServerWaitS));
        if (isTaskFinal(task) || Date.now() >= deadlineMs) return task;
        // A server that answers before its wait ends must not turn this loop into a busy one.
        const pauseMs = minWaitRoundMs - (Date.now() - startedMs);
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    },
    getTaskLog: (id) => transport.requestText("GET", `${taskPath(id)}/log`),
    cancelTask: (id) => requestJson("POST", `${taskPath(id)}/cancel`),
    retryTask: (id) => requestJson("POST", `${taskPath(id)}/retry`),
  };
}
