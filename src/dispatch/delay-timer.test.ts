import assert from "node:assert/strict";
import { test } from "node:test";
import { DelayTimer } from "./delay-timer.js";

test("fires once at the earliest run time it was armed with", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  let fired = 0;
  const timer = new DelayTimer(() => (fired += 1));
  timer.arm(new Date(5000));
  timer.arm(new Date(1000));
  timer.arm(new Date(3000));
  t.mock.timers.tick(999);
  assert.equal(fired, 0);
  t.mock.timers.tick(1);
  assert.equal(fired, 1);
  t.mock.timers.tick(10_000);
  assert.equal(fired, 1, "later run times are the store's to report again after a firing");
});

test("fires at once for a run time already past, and not at all once stopped", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 10_000 });
  let fired = 0;
  const timer = new DelayTimer(() => (fired += 1));
  timer.arm(new Date(5000));
  t.mock.timers.tick(0);
  assert.equal(fired, 1);
  timer.arm(new Date(20_000));
  timer.stop();
  t.mock.timers.tick(20_000);
  assert.equal(fired, 1);
});
