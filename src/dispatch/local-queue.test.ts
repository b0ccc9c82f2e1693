import assert from "node:assert/strict";
import { test } from "node:test";
import type { Priority } from "../domain/task.js";
import type { ClaimedTask } from "../store/store.js";
import { LocalQueue } from "./local-queue.js";

const lane = { project: "p", functionName: "f", revision: "r" };
const task = (id: string, priority: Priority): ClaimedTask => ({
  id,
  lane,
  payload: "null",
  priority,
  timeoutS: 10,
  attempt: 1,
  chargedAttempts: 0,
  startedAt: new Date(0),
  hasCallback: false,
});

test("serves the highest class first, FIFO within a class", () => {
  const queue = new LocalQueue();
  queue.add([task("b1", 1), task("b2", 1)], "priority");
  queue.add([task("s1", 3), task("bg1", 2)], "priority");
  assert.deepEqual(
    [queue.next(), queue.next(), queue.next(), queue.next()].map((next) => next?.id),
    ["s1", "bg1", "b1", "b2"],
  );
  assert.equal(queue.next(), undefined);
});

test("every fifth start goes to a task claimed oldest-first, whatever its class", () => {
  const queue = new LocalQueue();
  queue.add(
    Array.from({ length: 8 }, (_, n) => task(`hi${n}`, 2)),
    "priority",
  );
  queue.add([task("old", 0)], "oldest");
  const order = Array.from({ length: 9 }, () => queue.next()?.id);
  assert.equal(order[4], "old");
});

test("a higher class makes lower ones give way, and everything can be taken back out", () => {
  const queue = new LocalQueue();
  queue.add([task("a", 1), task("b", 0), task("c", 2)], "priority");
  assert.equal(queue.topPriority(), 2);
  assert.equal(queue.lowestPriority(), 0);
  assert.deepEqual(
    queue.removeBelow(2, 5).map((removed) => removed.id),
    ["b", "a"],
  );
  assert.ok(queue.has("c"));
  assert.equal(queue.remove("c")?.id, "c");
  assert.equal(queue.size, 0);
});
