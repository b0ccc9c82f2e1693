import assert from "node:assert/strict";
import { test } from "node:test";
import { exceedsJsonDepth, maxJsonDepth } from "./json-depth.js";

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

test("text nested up to the limit is accepted, one level more is refused", () => {
  assert.equal(exceedsJsonDepth(nested(maxJsonDepth)), false);
  assert.equal(exceedsJsonDepth(nested(maxJsonDepth + 1)), true);
  assert.equal(exceedsJsonDepth(`{"a":${nested(100_000)}}`), true);
});

test("brackets inside strings, escaped quotes included, do not count", () => {
  const text = JSON.stringify({ text: `"${"[".repeat(500)}\\"{{{` });
  assert.equal(exceedsJsonDepth(text, 1), false);
  assert.equal(exceedsJsonDepth(`[${text}]`, 2), false);
  assert.equal(exceedsJsonDepth(`[[${text}]]`, 2), true);
});
