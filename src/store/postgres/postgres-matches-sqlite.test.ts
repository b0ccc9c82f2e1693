/**
 * The two adapters side by side: one script of calls against SQLite and against PostgreSQL, every
 * answer compared. Skipped, saying so, without `KILN_TEST_DATABASE_URL` (see `test-database.ts`).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Lane } from "../../domain/lane.js";
import type { KilnError } from "../../domain/errors.js";
import { defaultSettings } from "../../domain/function-settings.js";
import { SqliteStore } from "../sqlite/sqlite-store.js";
import type { NewToken, Store, TokenScope } from "../store.js";
import {
  at,
  lane,
  newTask,
  project,
  skipWithoutDatabase,
  t0,
  TestDatabase,
  testDatabaseUrl,
} from "./test-database.js";

const database = new TestDatabase(testDatabaseUrl ?? "");
const freshSchema = () => database.fresh();
const openStore = (schema: string, nodeId?: string) => database.openStore(schema, nodeId);
if (testDatabaseUrl !== null) await database.check();
after(() => database.close());

/**
 * A script that calls every method of the port, with every result it sees in order. Ids and times are
 * fixed, so two adapters that behave alike produce the same record; cursors (which encode the adapter's
 * own sequence numbers) are recorded only as present or not, and unordered lists are sorted.
 */
async function recordScript(store: Store): Promise<[string, unknown][]> {
  const record: [string, unknown][] = [];
  const see = async <T>(label: string, value: Promise<T>): Promise<T> => {
    const result = await value;
    record.push([label, result]);
    return result;
  };
  const byLane = (lanes: Lane[]) => lanes.map((l) => `${l.project}/${l.functionName}/${l.revision}`).sort();
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const other: Lane = { project: "other", functionName: "awake", revision: "c".repeat(64) };

  await see("ensureProject", store.ensureProject(project, t0));
  await see("ensureProject again", store.ensureProject(project, at(1)));
  await see("hasProject", store.hasProject(project));
  await see("hasProject unknown", store.hasProject("nope"));
  await see(
    "deploy",
    store.deployRevision({
      project,
      name: lane.functionName,
      digest: lane.revision,
      spec: { runtime: "node", entry: ["index.js"] },
      archive: new Uint8Array([1, 2, 3]),
      settings: { ...defaultSettings, env: { B: "2", A: "\u0000" } },
      now: t0,
    }),
  );
  await store.ensureProject(other.project, t0);
  await see(
    "deploy warm",
    store.deployRevision({
      project: other.project,
      name: other.functionName,
      digest: other.revision,
      spec: { runtime: "exec", entry: ["python3", "main.py"] },
      archive: new Uint8Array(0),
      settings: { minWarm: 2 },
      now: at(1),
    }),
  );
  await see(
    "deploy b",
    store.deployRevision({
      project,
      name: lane.functionName,
      digest: "b".repeat(64),
      spec: { runtime: "node", entry: ["b.js"] },
      archive: new Uint8Array([9]),
      settings: { retries: 2 },
      now: t0, // the same millisecond as the first revision: insertion order decides
    }),
  );
  await see("getFunction", store.getFunction(project, lane.functionName));
  await see("getFunction unknown", store.getFunction(project, "nope"));
  await see("listFunctions", store.listFunctions(project));
  await see("listWarmFunctions", store.listWarmFunctions());
  await see("listRevisions", store.listRevisions(project, lane.functionName));
  await see("setCurrentRevision", store.setCurrentRevision(project, lane.functionName, lane.revision, at(2)));
  await see("setCurrentRevision unknown", store.setCurrentRevision(project, lane.functionName, "e", at(2)));
  await see(
    "updateFunctionSettings",
    store.updateFunctionSettings(
      project,
      lane.functionName,
      { ...defaultSettings, minWarm: 1, maxConcurrency: 3 },
      at(3),
    ),
  );
  await see(
    "updateFunctionSettings unknown",
    store.updateFunctionSettings(project, "nope", defaultSettings, at(3)),
  );
  await see("listWarmFunctions after", store.listWarmFunctions());
  await see("getRevisionArchive", store.getRevisionArchive(lane.revision));
  await see("getRevisionArchive empty", store.getRevisionArchive(other.revision));
  await see("getRevisionArchive unknown", store.getRevisionArchive("nope"));

  const callbackUrl = "http://127.0.0.1:9/hook";
  await see(
    "enqueue",
    store.enqueueTasks([
      newTask({ id: id(1), priority: 1, label: "x", callbackUrl }),
      newTask({ id: id(2), priority: 2, idempotencyKey: "k" }),
      newTask({ id: id(3), idempotencyKey: "k", payload: '{"dup":true}' }),
      newTask({ id: id(4), runAt: at(100), callbackUrl }),
      newTask({ id: id(5), label: "x", payload: '{"z":1,"a":[1.50]}' }),
      newTask({ id: id(6), ...other, runAt: at(50) }),
      newTask({ id: id(7), callbackUrl }),
    ]),
  );
  await see("enqueue nothing", store.enqueueTasks([]));
  await see("enqueue repeated key", store.enqueueTasks([newTask({ id: id(8), idempotencyKey: "k" })]));
  await see("nextRunAt", store.nextRunAt());
  await see("listReadyLanes", store.listReadyLanes().then(byLane));
  await see("claim oldest", store.claimTasks(lane, 1, at(10), { order: "oldest" }));
  await see("claim priority", store.claimTasks(lane, 2, at(11)));
  await see("claim none", store.claimTasks(lane, 0, at(11)));
  await see("updateProgress", store.updateProgress(id(2), 1, { percent: 50, message: "half" }));
  await see("updateProgress stale", store.updateProgress(id(2), 7, { percent: 99 }));
  await see("getTask running", store.getTask(project, id(2)));
  const failure = { kind: "handler_error", message: "boom", stack: "at x", retryable: true } as const;
  await see(
    "finish",
    store.finishAttempts([
      {
        taskId: id(1),
        attempt: 1,
        startedAt: at(10),
        finishedAt: at(20),
        outcome: "handler_error",
        failure,
        result: null,
        log: "first\n",
        next: { state: "delayed", runAt: at(60) },
      },
      {
        taskId: id(2),
        attempt: 1,
        startedAt: at(11),
        finishedAt: at(21),
        outcome: "succeeded",
        failure: null,
        result: '{"ok":true}',
        log: "y".repeat(900),
        next: { state: "succeeded" },
      },
      {
        taskId: id(2),
        attempt: 1,
        startedAt: at(11),
        finishedAt: at(22),
        outcome: "succeeded",
        failure: null,
        result: '"again"',
        log: "twice",
        next: { state: "succeeded" },
      },
      {
        taskId: id(5),
        attempt: 1,
        startedAt: at(11),
        finishedAt: at(23),
        outcome: "timeout",
        failure: { ...failure, kind: "timeout", retryable: false },
        result: null,
        log: "",
        next: { state: "timed_out" },
      },
    ]),
  );
  await see("releaseDueTasks early", store.releaseDueTasks(at(49)).then(byLane));
  await see("releaseDueTasks", store.releaseDueTasks(at(60)).then(byLane));
  await see("nextRunAt after", store.nextRunAt());
  const [retry] = await see("claim retry", store.claimTasks(lane, 5, at(61)));
  await see(
    "finish retry",
    store.finishAttempts([
      {
        taskId: retry!.id,
        attempt: retry!.attempt,
        startedAt: at(61),
        finishedAt: at(62),
        outcome: "crashed",
        failure: { ...failure, kind: "crashed" },
        result: null,
        log: "z".repeat(200),
        next: { state: "failed" },
      },
    ]),
  );
  await see("claim other", store.claimTasks(other, 5, at(63)));
  await see("recover", store.recoverInterruptedTasks(at(64), 1));
  await see("cancel delayed", store.cancelPendingTask(project, id(4), at(65)));
  await see("cancel queued", store.cancelPendingTask(project, id(7), at(66)));
  await see("cancel finished", store.cancelPendingTask(project, id(2), at(66)));
  await see("cancel unknown", store.cancelPendingTask(project, "nope", at(66)));
  await see("nextCallbackAt", store.nextCallbackAt());
  await see("claimDueCallbacks early", store.claimDueCallbacks(at(61), 10, 1000));
  const first = await see("claimDueCallbacks limited", store.claimDueCallbacks(at(70), 1, 1000));
  const rest = await see("claimDueCallbacks", store.claimDueCallbacks(at(70), 10, 1000));
  await see("claimDueCallbacks claimed already", store.claimDueCallbacks(at(71), 10, 1000));
  const due = [...first, ...rest];
  for (const [index, callback] of due.entries())
    await see(
      `recordCallbackAttempt ${index}`,
      store.recordCallbackAttempt(callback.task.id, {
        delivered: index === 0,
        retryAt: index === 1 ? at(200) : null,
      }),
    );
  await see(
    "recordCallbackAttempt not pending",
    store.recordCallbackAttempt(id(2), { delivered: true, retryAt: null }),
  );
  await see("nextCallbackAt after", store.nextCallbackAt());
  await see("listDueCallbacks after", store.claimDueCallbacks(at(300), 10, 1000));
  await see("requeue", store.requeueFinishedTask(project, id(1), at(80)));
  await see("requeue unfinished", store.requeueFinishedTask(project, id(1), at(81)));
  await see("requeue unknown", store.requeueFinishedTask(project, "nope", at(81)));
  await see(
    "enqueueAndClaim",
    store.enqueueAndClaimTasks(
      [
        newTask({ id: id(9), priority: 3, createdAt: at(90), runAt: at(90) }),
        newTask({ id: id(10), idempotencyKey: "k" }),
      ],
      { lane, limit: 1, now: at(95) },
    ),
  );
  // A lost attempt is not charged; a log that reaches the limit exactly is cut at the next append; a
  // requeued task's callback starts over.
  const laneB: Lane = { ...lane, revision: "b".repeat(64) };
  const succeeded = {
    outcome: "succeeded",
    failure: null,
    result: "1",
    next: { state: "succeeded" },
  } as const;
  await see(
    "enqueue lane b",
    store.enqueueTasks([newTask({ id: id(11), ...laneB, callbackUrl }), newTask({ id: id(12), ...laneB })]),
  );
  await see("claim lane b", store.claimTasks(laneB, 2, at(100)));
  await see(
    "finish lost",
    store.finishAttempts([
      {
        taskId: id(11),
        attempt: 1,
        startedAt: at(100),
        finishedAt: at(101),
        outcome: "lost",
        failure: { kind: "lost", message: "gone", retryable: true },
        result: null,
        log: "L".repeat(1000),
        next: { state: "delayed", runAt: at(110) },
      },
      { taskId: id(12), attempt: 1, startedAt: at(100), finishedAt: at(101), ...succeeded, log: "" },
    ]),
  );
  await see("log at the limit", store.getTaskLog(project, id(11)));
  await see("release lane b", store.releaseDueTasks(at(110)).then(byLane));
  await see("claim after lost", store.claimTasks(laneB, 2, at(111)));
  await see(
    "finish after lost",
    store.finishAttempts([
      { taskId: id(11), attempt: 2, startedAt: at(111), finishedAt: at(112), ...succeeded, log: "more" },
    ]),
  );
  await see("callbacks of lane b", store.claimDueCallbacks(at(300), 10, 1000));
  await see("callback failed", store.recordCallbackAttempt(id(11), { delivered: false, retryAt: null }));
  await see("requeue with callback", store.requeueFinishedTask(project, id(11), at(120)));
  await see("claim requeued", store.claimTasks(laneB, 2, at(121)));
  await see(
    "finish requeued",
    store.finishAttempts([
      { taskId: id(11), attempt: 3, startedAt: at(121), finishedAt: at(122), ...succeeded, log: "" },
    ]),
  );
  await see("callbacks after requeue", store.claimDueCallbacks(at(300), 10, 1000));
  for (const task of (await store.listTasks({ project, limit: 100 })).tasks)
    await see(`getTaskLog ${task.id}`, store.getTaskLog(project, task.id));
  await see("getTaskLog unknown", store.getTaskLog(project, "nope"));
  let cursor: string | undefined;
  for (let page = 0; page < 4; page++) {
    const result = await store.listTasks({ project, limit: 3, ...(cursor === undefined ? {} : { cursor }) });
    record.push([`listTasks page ${page}`, { tasks: result.tasks, more: result.nextCursor !== null }]);
    if (result.nextCursor === null) break;
    cursor = result.nextCursor;
  }
  for (const query of [
    { state: "queued" as const },
    { state: "failed" as const },
    { label: "x" },
    { functionName: "nope" },
  ])
    await see(`listTasks ${JSON.stringify(query)}`, store.listTasks({ project, limit: 10, ...query }));
  await assert.rejects(async () => store.listTasks({ project, limit: 1, cursor: "bogus" }), /cursor/);

  await see("createProject", store.createProject("gone", "to be deleted", at(200)));
  await see("createProject again", store.createProject("gone", "twice", at(201)));
  await see("getProject", store.getProject(project));
  await see("updateProject", store.updateProject("gone", { description: "soon gone" }, at(202)));
  await see("updateProject unknown", store.updateProject("nope", {}, at(202)));
  await see("listProjects", store.listProjects());
  await see("countProjectContents", store.countProjectContents(project));
  const token = (n: number, scope: TokenScope): NewToken => ({
    id: `tok_${n}`,
    name: `token ${n}`,
    digest: Buffer.alloc(32, n),
    scope,
    createdAt: at(210 + (n % 2)),
    expiresAt: n === 2 ? at(9000) : null,
  });
  await see("createToken admin", store.createToken(token(1, { kind: "admin" })));
  await see("createToken", store.createToken(token(2, { kind: "project", project, role: "deploy" })));
  await see(
    "createToken gone",
    store.createToken(token(3, { kind: "project", project: "gone", role: "read" })),
  );
  await see(
    "createToken unknown",
    store.createToken(token(4, { kind: "project", project: "nope", role: "run" })),
  );
  await see("findToken", store.findToken(Buffer.alloc(32, 2)));
  await see("recordTokenUse", store.recordTokenUse(["tok_1", "tok_2", "tok_9"], at(220)));
  await see("recordTokenUse earlier", store.recordTokenUse(["tok_1"], at(215)));
  await see("revokeToken", store.revokeToken("tok_2", at(230)));
  await see("revokeToken again", store.revokeToken("tok_2", at(231)));
  await see("revokeToken unknown", store.revokeToken("tok_9", at(231)));
  await see("listTokens", store.listTokens());
  await see("listTokens gone", store.listTokens("gone"));
  const gone: Lane = { project: "gone", functionName: "shared", revision: lane.revision };
  await store.deployRevision({
    project: gone.project,
    name: gone.functionName,
    digest: gone.revision,
    spec: { runtime: "node", entry: ["index.js"] },
    archive: new Uint8Array([1, 2, 3]),
    settings: {},
    now: at(240),
  });
  await see("enqueue gone", store.enqueueTasks([newTask({ id: id(20), ...gone, callbackUrl })]));
  const [goneTask] = await see("claim gone", store.claimTasks(gone, 1, at(241)));
  await see(
    "finish gone",
    store.finishAttempts([
      { taskId: goneTask!.id, attempt: 1, startedAt: at(241), finishedAt: at(242), ...succeeded, log: "bye" },
    ]),
  );
  await see("countProjectContents gone", store.countProjectContents("gone"));
  await see("deleteProject unfinished", store.deleteProject(project));
  await see("deleteProject", store.deleteProject("gone"));
  await see("deleteProject again", store.deleteProject("gone"));
  await see("getTask deleted", store.getTask("gone", id(20)));
  await see("getTaskLog deleted", store.getTaskLog("gone", id(20)));
  await see("getFunction deleted", store.getFunction("gone", gone.functionName));
  await see("getRevisionArchive shared", store.getRevisionArchive(lane.revision));
  await see("listTokens after delete", store.listTokens());
  await see("listProjects after delete", store.listProjects());
  await see("nextCallbackAt after delete", store.nextCallbackAt());
  await see(
    "enqueue deleted",
    store
      .enqueueTasks([newTask({ id: id(21), ...gone })])
      .catch((error: unknown) => (error as KilnError).code),
  );
  return record;
}

test(
  "PostgresStore answers every call of a script exactly as SqliteStore does",
  { skip: skipWithoutDatabase },
  async () => {
    const sqlite = new SqliteStore({ path: ":memory:", maxLogChars: 1000 });
    const expected = await recordScript(sqlite);
    await sqlite.close();
    const actual = await recordScript(await openStore(freshSchema()));
    assert.equal(actual.length, expected.length);
    for (const [index, [label, value]] of expected.entries()) {
      assert.equal(actual[index]?.[0], label);
      assert.deepEqual(actual[index]?.[1], value, label);
    }
  },
);
