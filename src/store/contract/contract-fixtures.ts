/** What the parts of the `Store` contract share: a project with one deployed function, tasks and ends. */
import type { Lane } from "../../domain/lane.js";
import { randomUUID } from "node:crypto";
import { defaultSettings } from "../../domain/function-settings.js";
import type { AttemptEnd, NewTask, Store } from "../store.js";

export const project = "default";
export const lane: Lane = { project, functionName: "hello", revision: "a".repeat(64) };
export const t0 = new Date("2026-01-01T00:00:00Z");
export const at = (ms: number) => new Date(t0.getTime() + ms);

export async function storeWithFunction(makeStore: () => Promise<Store>): Promise<Store> {
  const store = await makeStore();
  await store.ensureProject(project, t0);
  await deployLane(store, lane);
  return store;
}

/** Deploys the lane's revision (archive bytes 1, 2, 3) as its function's current one. */
export async function deployLane(store: Store, { project, functionName, revision }: Lane): Promise<void> {
  await store.deployRevision({
    project,
    name: functionName,
    digest: revision,
    spec: { runtime: "node", entry: ["index.js"] },
    archive: new Uint8Array([1, 2, 3]),
    settings: defaultSettings,
    now: t0,
  });
}

export function newTask(overrides: Partial<NewTask> = {}): NewTask {
  return {
    id: randomUUID(),
    project,
    functionName: lane.functionName,
    revision: lane.revision,
    priority: 0,
    payload: "{}",
    label: null,
    idempotencyKey: null,
    timeoutS: 60,
    createdAt: t0,
    runAt: t0,
    callbackUrl: null,
    ...overrides,
  };
}

export function end(taskId: string, attempt: number, overrides: Partial<AttemptEnd> = {}): AttemptEnd {
  return {
    taskId,
    attempt,
    startedAt: at(1),
    finishedAt: at(2),
    outcome: "succeeded",
    failure: null,
    result: '"ok"',
    log: "",
    next: { state: "succeeded" },
    ...overrides,
  };
}
