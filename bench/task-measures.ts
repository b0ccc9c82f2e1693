/**
 * The measurements made through the HTTP API of running nodes, the same whatever store the nodes use:
 * start latency, drain throughput (one node or several sharing a database), synchronous invoke.
 */
import hdr from "hdr-histogram-js";
import { call, countSandboxes, type Api, type TaskView } from "./http-api.js";

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface Drain {
  /** (tasks − 1) / (last handler start − first handler start), the method of `../shared/bench-peers/`. */
  tasksPerS: number;
  /** tasks / (last handler start − the moment the unpause calls were sent). */
  tasksPerSFromUnpause: number;
  /** The drained tasks, in the order they were created. */
  taskIds: string[];
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

function nanosecondHistogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** One task at a time into an idle warm sandbox: hrtime before the create call → handler start. */
export async function measureStartLatency(api: Api, probes: number): Promise<Latency> {
  const histogram = nanosecondHistogram();
  for (let i = 0; i < probes + 10; i++) {
    await sleep(2 + Math.random() * 8);
    const before = process.hrtime.bigint();
    const { task } = await call<{ task: TaskView }>(api, "POST", "/tasks", { function: "noop" });
    const done = await call<TaskView>(api, "GET", `/tasks/${task.id}/wait?timeoutS=10`);
    if (done.state !== "succeeded" || done.result === null) throw new Error(`probe task ended ${done.state}`);
    if (i >= 10) histogram.recordValue(Number(BigInt(done.result) - before)); // first 10 warm up
  }
  const ms = (percentile: number) => histogram.getValueAtPercentile(percentile) / 1e6;
  return { p50: ms(50), p90: ms(90), p99: ms(99), max: histogram.maxValue / 1e6 };
}

/**
 * Enqueues `tasks` while the function is paused, spread evenly over the nodes in calls of up to 5,000,
 * then unpauses it: first to last handler start, whichever node started them. The pause and the
 * unpause go through every node at once: a node caches a function's settings, and a change made
 * through one node reaches the others only with the distributed mode's announcements.
 */
export async function measureDrain(apis: Api[], tasks: number, sandboxesPerNode: number): Promise<Drain> {
  // Warm every pool to its concurrency first, as the peers' workers are started before they drain; one
  // node at a time, the others helping to drain its batches.
  for (const api of apis) await warmUp(api, sandboxesPerNode);
  await Promise.all(apis.map((api) => call(api, "PATCH", "/functions/noop", { paused: true })));
  const ids: string[] = [];
  const share = Math.ceil(tasks / apis.length);
  for (const [index, api] of apis.entries()) {
    const mine = Math.min(share, tasks - index * share);
    for (let sent = 0; sent < mine; sent += 5000) {
      const batch = Array.from({ length: Math.min(5000, mine - sent) }, () => ({ function: "noop" }));
      const { tasks: created } = await call<{ tasks: TaskView[] }>(api, "POST", "/tasks", { tasks: batch });
      ids.push(...created.map((task) => task.id));
    }
  }
  const unpausedAt = process.hrtime.bigint();
  await Promise.all(apis.map((api) => call(api, "PATCH", "/functions/noop", { paused: false })));
  const starts = await collectStarts(apis[0]!, ids);
  const last = starts.at(-1)!;
  return {
    tasksPerS: (tasks - 1) / (Number(last - starts[0]!) / 1e9),
    tasksPerSFromUnpause: tasks / (Number(last - unpausedAt) / 1e9),
    taskIds: ids,
  };
}

/** Runs batches of 2,000 tasks until the node has its `sandboxes` started (at most 4 batches). */
async function warmUp(api: Api, sandboxes: number): Promise<void> {
  for (let batch = 0; batch < 4; batch++) {
    await runBatch(api, 2000);
    if ((await countSandboxes(api)) >= sandboxes) return;
  }
  console.warn(`warm-up: ${api.url} has ${await countSandboxes(api)} of ${sandboxes} sandboxes`);
}

async function runBatch(api: Api, count: number): Promise<void> {
  const { tasks } = await call<{ tasks: TaskView[] }>(api, "POST", "/tasks", {
    tasks: Array.from({ length: count }, () => ({ function: "noop" })),
  });
  await collectStarts(
    api,
    tasks.map((task) => task.id),
  );
}

/** Waits in one-second long polls: a task run by another node may end without waking this node's waiters. */
async function waitUntilFinal(api: Api, id: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let state = "unknown";
  while (performance.now() < deadline) {
    ({ state } = await call<TaskView>(api, "GET", `/tasks/${id}/wait?timeoutS=1`));
    if (!["queued", "delayed", "running"].includes(state)) return;
  }
  throw new Error(`task ${id} still ${state} after ${timeoutMs} ms`);
}

/** The handler start of each task of `ids`, sorted, read from the listing once they have all ended. */
async function collectStarts(api: Api, ids: string[]): Promise<bigint[]> {
  const wanted = new Set(ids);
  const starts = new Map<string, bigint>();
  // A minute, or more for a slow drain (25 tasks/s): past that, a task is taken to be stuck.
  const timeoutMs = 60_000 + ids.length * 40;
  // FIFO: the last task starts last. Waiting for it first keeps the listing below off the drain.
  await waitUntilFinal(api, ids.at(-1)!, timeoutMs);
  while (starts.size < wanted.size) {
    await waitUntilFinal(
      api,
      ids.find((id) => !starts.has(id))!,
      timeoutMs,
    );
    let cursor: string | null = null;
    do {
      const page: { tasks: TaskView[]; nextCursor: string | null } = await call(
        api,
        "GET",
        `/tasks?function=noop&state=succeeded&limit=1000${cursor === null ? "" : `&cursor=${cursor}`}`,
      );
      for (const task of page.tasks) {
        if (task.result !== null && wanted.has(task.id)) starts.set(task.id, BigInt(task.result));
      }
      cursor = page.nextCursor;
    } while (cursor !== null);
  }
  return [...starts.values()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** One synchronous invoke at a time: the whole HTTP round trip, result included. */
export async function measureInvoke(
  api: Api,
  samples: number,
  background = 0,
): Promise<{ p50: number; p99: number; rate: number }> {
  const histogram = nanosecondHistogram();
  let offered = 0;
  // Background load: `background` tasks/s as batches of 10 every 10/background s.
  const timer =
    background > 0
      ? setInterval(() => {
          offered += 10;
          void call(api, "POST", "/tasks", {
            tasks: Array.from({ length: 10 }, () => ({ function: "noop", priority: 1 })),
          });
        }, 10_000 / background)
      : null;
  const startedMs = performance.now();
  try {
    for (let i = 0; i < samples + 20; i++) {
      await sleep(1 + Math.random() * 4);
      const before = process.hrtime.bigint();
      await call(api, "POST", "/functions/noop/invoke?wait=10", null);
      if (i >= 20) histogram.recordValue(Number(process.hrtime.bigint() - before));
    }
  } finally {
    if (timer !== null) clearInterval(timer);
  }
  const rate = (offered / (performance.now() - startedMs)) * 1000;
  return {
    p50: histogram.getValueAtPercentile(50) / 1e6,
    p99: histogram.getValueAtPercentile(99) / 1e6,
    rate,
  };
}
