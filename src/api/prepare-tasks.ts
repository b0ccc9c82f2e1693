/** Turning task inputs into new tasks: the checks a whole batch passes before anything is written. */
import { randomUUID } from "node:crypto";
import { KilnError } from "../domain/errors.js";
import type { Priority } from "../domain/task.js";
import type { FunctionRecord, NewTask, Store } from "../store/store.js";
import type { TaskInput } from "./schemas.js";

/** One bad task rejects them all: unknown function (404), payload over `maxPayloadBytes` (413). */
export async function prepareTasks(
  store: Store,
  maxPayloadBytes: number,
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
  return inputs.map((input, index): NewTask => {
    const payload = JSON.stringify(input.payload ?? null);
    const bytes = Buffer.byteLength(payload);
    if (bytes > maxPayloadBytes) {
      throw new KilnError(
        "PAYLOAD_TOO_LARGE",
        `task ${index}: the payload is ${bytes} bytes, over the limit of ${maxPayloadBytes}`,
        { details: { index, bytes, limit: maxPayloadBytes } },
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
      callbackUrl: input.callbackUrl ?? null,
    };
  });
}
