/** Request schemas (TypeBox → JSON Schema): fastify validates with them and the OpenAPI document shows them. */
import { Type, type Static } from "typebox";
import { limits } from "../domain/function-settings.js";
import { taskStates } from "../domain/task.js";

const name = (what: string) =>
  Type.String({
    pattern: "^[a-z0-9][a-z0-9_-]{0,62}$",
    description: `a ${what}: lowercase letters, digits, - and _, starting with a letter or digit, at most 63 characters`,
  });

export const ProjectParams = Type.Object({ project: name("project name") });
export const FunctionParams = Type.Object({ project: name("project name"), name: name("function name") });
export const TaskParams = Type.Object({
  project: name("project name"),
  id: Type.String({ maxLength: 64, description: "a task id" }),
});

const Backoff = Type.Object(
  {
    type: Type.Union([Type.Literal("fixed"), Type.Literal("exponential")]),
    delayMs: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    maxDelayMs: Type.Integer({ minimum: 0, maximum: 86_400_000 }),
  },
  { additionalProperties: false },
);

const settingsProperties = {
  memoryMb: Type.Optional(Type.Integer({ minimum: limits.memoryMb.min, maximum: limits.memoryMb.max })),
  timeoutS: Type.Optional(Type.Integer({ minimum: limits.timeoutS.min, maximum: limits.timeoutS.max })),
  maxConcurrency: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, description: "0 = unlimited" })),
  retries: Type.Optional(Type.Integer({ minimum: limits.retries.min, maximum: limits.retries.max })),
  backoff: Type.Optional(Backoff),
  env: Type.Optional(
    Type.Record(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]*$" }), Type.String({ maxLength: 32_768 }), {
      additionalProperties: false,
      description: "environment variable names are letters, digits and _, not starting with a digit",
    }),
  ),
  paused: Type.Optional(Type.Boolean()),
  minWarm: Type.Optional(Type.Integer({ minimum: limits.minWarm.min, maximum: limits.minWarm.max })),
  singleUse: Type.Optional(Type.Boolean()),
};

/** `kiln.json` at the root of a function's directory. */
export const Manifest = Type.Object(
  {
    name: Type.Optional(name("function name")),
    runtime: Type.Optional(Type.Union([Type.Literal("node"), Type.Literal("exec")])),
    entry: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
    ),
    ...settingsProperties,
  },
  { additionalProperties: false },
);
export type Manifest = Static<typeof Manifest>;

export const FunctionPatch = Type.Object(settingsProperties, { additionalProperties: false });
export type FunctionPatch = Static<typeof FunctionPatch>;

export const RollbackBody = Type.Object(
  {
    revision: Type.String({ pattern: "^[0-9a-f]{64}$", description: "a 64-character lowercase hex digest" }),
  },
  { additionalProperties: false },
);

/** Text without NUL characters, which PostgreSQL's text type cannot hold (SQLite would take them). */
const noNul = "^[^\\u0000]*$";
const noNulWords = "text without NUL characters";

export const TaskInput = Type.Object(
  {
    function: name("function name"),
    payload: Type.Optional(Type.Unknown({ description: "any JSON value; text is a JSON string" })),
    priority: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)])),
    delayS: Type.Optional(Type.Number({ minimum: limits.delayS.min, maximum: limits.delayS.max })),
    timeoutS: Type.Optional(Type.Integer({ minimum: limits.timeoutS.min, maximum: limits.timeoutS.max })),
    label: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: noNul, description: noNulWords }),
    ),
    idempotencyKey: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, pattern: noNul, description: noNulWords }),
    ),
    callbackUrl: Type.Optional(
      Type.String({
        pattern: "^https?://[^\\u0000]*$",
        maxLength: 2048,
        description:
          "an http:// or https:// URL (Kiln POSTs the task's outcome there once it ends, signed, retried until delivered)",
      }),
    ),
  },
  { additionalProperties: false },
);
export type TaskInput = Static<typeof TaskInput>;

export const TaskBatch = Type.Object(
  { tasks: Type.Array(TaskInput, { minItems: 1, maxItems: limits.batchSize }) },
  { additionalProperties: false },
);

export const CreateTasksBody = Type.Union([TaskInput, TaskBatch]);

export const TaskListQuery = Type.Object(
  {
    function: Type.Optional(name("function name")),
    state: Type.Optional(Type.Union(taskStates.map((state) => Type.Literal(state)))),
    label: Type.Optional(Type.String({ maxLength: 128, pattern: noNul, description: noNulWords })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: "the nextCursor of a previous page" })),
  },
  { additionalProperties: false },
);

export const InvokeQuery = Type.Object(
  {
    wait: Type.Optional(
      Type.Number({ minimum: 0, maximum: 3600, description: "seconds to wait for the result" }),
    ),
    timeoutS: Type.Optional(Type.Integer({ minimum: limits.timeoutS.min, maximum: limits.timeoutS.max })),
    cancelOnDisconnect: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const GetTaskQuery = Type.Object(
  {
    wait: Type.Optional(
      Type.Number({ minimum: 0, maximum: 60, description: "seconds to wait for a final state" }),
    ),
  },
  { additionalProperties: false },
);

export const WaitQuery = Type.Object(
  { timeoutS: Type.Optional(Type.Number({ minimum: 0, maximum: 60 })) },
  { additionalProperties: false },
);

const description = Type.String({
  maxLength: 500,
  pattern: noNul,
  description: `what the project is for, at most 500 characters; ${noNulWords}`,
});

export const CreateProjectBody = Type.Object(
  { name: name("project name"), description: Type.Optional(description) },
  { additionalProperties: false },
);

export const ProjectPatch = Type.Object(
  {
    description: Type.Optional(description),
    // A type list, not a union: see `planLimit` below.
    plan: Type.Optional(
      Type.Unsafe<string | null>({
        ...name("plan name"),
        type: ["string", "null"],
        description: "the plan the project is on (a plan name); null: none",
      }),
    ),
  },
  { additionalProperties: false },
);

export const DeleteProjectQuery = Type.Object(
  {
    cancelTasks: Type.Optional(
      Type.Boolean({ description: "cancel the project's queued, delayed and running tasks first" }),
    ),
  },
  { additionalProperties: false },
);

export const TokenParams = Type.Object({ id: Type.String({ maxLength: 64, description: "a token id" }) });

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: noNul,
      description: `a name to know the token by; ${noNulWords}`,
    }),
    project: Type.Optional(name("project name")),
    role: Type.Union(
      [Type.Literal("admin"), Type.Literal("deploy"), Type.Literal("run"), Type.Literal("read")],
      {
        description: "admin (every project; no project given), or deploy, run or read within `project`",
      },
    ),
    expiresInS: Type.Optional(
      Type.Integer({
        minimum: 60,
        maximum: 10 * 365 * 86_400,
        description: "seconds until the token expires",
      }),
    ),
  },
  { additionalProperties: false },
);

export const TokenListQuery = Type.Object(
  { project: Type.Optional(name("project name")) },
  { additionalProperties: false },
);

/**
 * A limit, or null for none. One JSON Schema `type` list rather than a union: the validator coerces
 * into a union's `null` branch (0 would become null), but never away from a type the value has.
 */
const planLimit = (minimum: number, maximum: number, description: string) =>
  Type.Optional(
    Type.Unsafe<number | null>({
      type: ["integer", "null"],
      minimum,
      maximum,
      description: `${description}; null: no limit`,
    }),
  );

const planLimitFields = {
  maxMemoryMb: planLimit(
    limits.memoryMb.min,
    limits.memoryMb.max,
    "the most memory (MiB) a function may ask for",
  ),
  maxTimeoutS: planLimit(
    limits.timeoutS.min,
    limits.timeoutS.max,
    "the longest timeout (s) of a function or a task",
  ),
  maxPayloadBytes: planLimit(1, 1024 ** 3, "the largest task payload (bytes of JSON)"),
};

export const PlanParams = Type.Object({ plan: name("plan name") });

export const CreatePlanBody = Type.Object(
  { name: name("plan name"), ...planLimitFields },
  { additionalProperties: false },
);

export const PlanPatch = Type.Object(planLimitFields, { additionalProperties: false });
