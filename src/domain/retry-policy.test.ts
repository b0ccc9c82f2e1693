import assert from "node:assert/strict";
import { test } from "node:test";
import { decideNextState } from "./retry-policy.js";

const settings = { retries: 2, backoff: { type: "exponential", delayMs: 100, maxDelayMs: 1000 } } as const;
const now = new Date(1_000_000);
const failure = { kind: "handler_error", message: "boom", retryable: true } as const;

test("a retryable failure with retries left waits its backoff, then runs again", () => {
  assert.deepEqual(decideNextState("handler_error", failure, 0, settings, now), {
    state: "delayed",
    runAt: new Date(1_000_100),
  });
  assert.deepEqual(decideNextState("handler_error", failure, 1, settings, now), {
    state: "delayed",
    runAt: new Date(1_000_200),
  });
});

test("a failure ends the task once its retries are used up", () => {
  assert.deepEqual(decideNextState("handler_error", failure, 2, settings, now), { state: "failed" });
});

test("a non-retryable failure ends the task at once", () => {
  assert.deepEqual(decideNextState("handler_error", { ...failure, retryable: false }, 0, settings, now), {
    state: "failed",
  });
});

test("a timeout is retried while retries are left, then ends timed_out", () => {
  const timeout = { kind: "timeout", message: "late", retryable: true } as const;
  assert.equal(decideNextState("timeout", timeout, 0, settings, now).state, "delayed");
  assert.equal(decideNextState("timeout", timeout, 2, settings, now).state, "timed_out");
});

test("a cancelled attempt is never retried", () => {
  const cancelled = { kind: "cancelled", message: "stop", retryable: true } as const;
  assert.equal(decideNextState("cancelled", cancelled, 0, settings, now).state, "cancelled");
});
