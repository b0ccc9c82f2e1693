import assert from "node:assert/strict";
import { test } from "node:test";
import { computeRetryDelayMs } from "./backoff.js";

test("exponential backoff doubles each retry up to its cap", () => {
  const backoff = { type: "exponential", delayMs: 100, maxDelayMs: 500 } as const;
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((retry) => computeRetryDelayMs(backoff, retry)),
    [100, 200, 400, 500, 500],
  );
});

test("fixed backoff waits the same delay every retry", () => {
  const backoff = { type: "fixed", delayMs: 250, maxDelayMs: 1000 } as const;
  assert.deepEqual(
    [1, 2, 3].map((retry) => computeRetryDelayMs(backoff, retry)),
    [250, 250, 250],
  );
});
