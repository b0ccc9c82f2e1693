import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultMemoryTiersMb, tierFor } from "./memory-tiers.js";

test("a function runs in the smallest tier that holds its memory", () => {
  assert.equal(tierFor(64, defaultMemoryTiersMb), 128);
  assert.equal(tierFor(256, defaultMemoryTiersMb), 256);
  assert.equal(tierFor(300, defaultMemoryTiersMb), 512);
  assert.equal(tierFor(2048, defaultMemoryTiersMb), 2048);
  assert.equal(tierFor(2049, defaultMemoryTiersMb), null);
});
