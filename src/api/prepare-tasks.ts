/** Turning task inputs into new tasks: the checks a whole batch passes before anything is written. */
import { randomUUID } from "node:crypto";
import { KilnError } from "../domain/errors.js";
import { exceedsJsonDepth, maxJsonDepth } from "../domain/json-depth.js";
import { refusedCallbackUrl } from "../dispatch/callback-address.js";
import type { Priority } from "../domain/task.js";
import type { FunctionRecord, NewTask, Store } from "../store/store.js";
import { overPlanLimit, type ProjectPlan } from "./project-plans.js";
import type { TaskInput } from "./schemas.js";

/**
 * One bad task rejects them all: unknown function (404), payload over `maxPayloadBytes` or the plan's
 * limit (413), a timeout over the plan's (400).
 */
export async function prepareTasks(
  store: Store,
  nodeMaxPayloadBytes: number,
  plan: ProjectPlan,
  project: string,
  inputs: (Omit<TaskInput, "priority"> & { priority?: Priority })[],
): Promise<NewTask[]> {
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
  const planPayloadBytes = plan.limits.maxPayloadBytes ?? Number.POSITIVE_INFINITY;
  const maxPayloadBytes = Math.min(nodeMaxPayloadBytes, planPayloadBytes);
  const whose = planPayloadBytes < nodeMaxPayloadBytes ? ` of plan '${plan.name}'` : "";
  return inputs.map((input, index): NewTask => {
    const payload = JSON.stringify(input.payload ?? null);
    if (exceedsJsonDepth(payload)) {
      throw new KilnError(
        "JSON_TOO_DEEP",
        `${taskField(inputs.length, index)}payload nests arrays and objects more than ${maxJsonDepth} deep`,
        { details: { index, limit: maxJsonDepth } },
      );
    }
    const bytes = Buffer.byteLength(payload);
    if (bytes > maxPayloadBytes) {
      throw new KilnError(
        "PAYLOAD_TOO_LARGE",
        `task ${index}: the payload is ${bytes} bytes, over the limit${whose} of ${maxPayloadBytes}`,
        { details: { index, bytes, limit: maxPayloadBytes } },
      );
    }
    const fn = functions.get(input.function) as FunctionRecord;
    const timeoutS = input.timeoutS ?? fn.settings.timeoutS;
    if (plan.name !== null && plan.limits.maxTimeoutS !== null && timeoutS > plan.limits.maxTimeoutS) {
      const violation = { field: "timeoutS" as const, value: timeoutS, limit: plan.limits.maxTimeoutS };
      throw overPlanLimit(plan.name, [violation], () => `${taskField(inputs.length, index)}timeoutS`);
    }
    return {
      id: randomUUID(),
      project,
      functionName: input.function,
      revision: fn.currentRevision,
      priority: input.priority ?? 0,
      payload,
      label: input.label ?? null,
      idempotencyKey: input.idempotencyKey ?? null,
      timeoutS,
      createdAt: now,
      runAt: new Date(now.getTime() + Math.round((input.delayS ?? 0) * 1000)),
      callbackUrl: input.callbackUrl ?? null,
    };
  });
}

/**
 * Refuses callback URLs that cannot be delivered, or that point into the node's own network (a
 * literal private address, `localhost`) unless the operator allows that; names that resolve to
 * such addresses are refused at delivery time.
 */
export function checkCallbackUrls(inputs: readonly TaskInput[], allowPrivate: boolean): void {
  inputs.forEach((input, index) => {
    if (input.callbackUrl === undefined) return;
    const field = `${taskField(inputs.length, index)}callbackUrl`;
    let url: URL;
    try {
      url = new URL(input.callbackUrl);
    } catch {
      throw new KilnError("BAD_REQUEST", `${field} is not a valid URL`, { details: { index } });
    }
    const refused = allowPrivate ? null : refusedCallbackUrl(url);
    if (refused !== null) {
      throw new KilnError(
        "CALLBACK_ADDRESS_NOT_ALLOWED",
        `${field}: ${url.hostname} is ${refused}; callbacks go to public addresses only (the operator can allow others with KILN_CALLBACK_ALLOW_PRIVATE=1)`,
        { details: { index } },
      );
    }
  });
}

/** How a task's field is named in a message: `tasks[3].` in a batch, nothing for a single task. */
function taskField(count: number, index: number): string {
  return count === 1 ? "" : `tasks[${index}].`;
}
