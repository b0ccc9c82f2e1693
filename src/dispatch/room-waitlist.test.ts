import assert from "node:assert/strict";
import { test } from "node:test";
import { RoomWaitlist, type WaitingLane } from "./room-waitlist.js";

const lane = (priority = 1): WaitingLane => ({ pump: () => {}, topPriority: () => priority });

test("a freed sandbox makes room for a waiting lane of a higher class only, as many times as it lacks", () => {
  const waitlist = new RoomWaitlist();
  const [background, invoke, other] = [lane(1), lane(3), lane(3)];
  waitlist.wait(invoke, 2);
  assert.equal(waitlist.yieldsRoom(invoke, -1), false, "a lane never makes room for itself");
  assert.equal(waitlist.yieldsRoom(other, 3), false, "an equal class keeps its sandbox");
  assert.equal(waitlist.yieldsRoom(background, 1), true);
  assert.equal(waitlist.yieldsRoom(background, 1), true);
  assert.equal(waitlist.yieldsRoom(background, 1), false, "its need is met");
});

test("waiting lanes are listed highest class first", () => {
  const waitlist = new RoomWaitlist();
  const [low, high] = [lane(0), lane(3)];
  waitlist.wait(low, 1);
  waitlist.wait(high, 1);
  assert.deepEqual(waitlist.lanes(), [high, low]);
  waitlist.leave(high);
  assert.deepEqual(waitlist.lanes(), [low]);
});

test("a lane whose tasks no longer wait is dropped from the list", () => {
  const waitlist = new RoomWaitlist();
  let priority = 3;
  const invoke: WaitingLane = { pump: () => {}, topPriority: () => priority };
  waitlist.wait(invoke, 1);
  priority = -1; // its task was handed back and cancelled
  assert.equal(waitlist.yieldsRoom(lane(1), 1), false);
  assert.deepEqual(waitlist.lanes(), []);
});

test("room stays expected for a lane from its wait until it next tries to grow, through the sandbox that made way", () => {
  const waitlist = new RoomWaitlist();
  const [background, invoke] = [lane(1), lane(3)];
  assert.equal(waitlist.expectsRoom(invoke), false);
  waitlist.wait(invoke, 1);
  assert.equal(waitlist.expectsRoom(invoke), true, "waiting for a sandbox of a lower class");
  assert.equal(waitlist.yieldsRoom(background, 1), true);
  assert.deepEqual(waitlist.lanes(), [], "its need is met");
  assert.equal(waitlist.expectsRoom(invoke), true, "the sandbox that made way is still exiting");
  waitlist.leave(invoke); // it started its sandbox, or no longer lacks one
  assert.equal(waitlist.expectsRoom(invoke), false);
});
