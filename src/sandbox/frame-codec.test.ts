import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeFrame, FrameDecoder, FrameError } from "./frame-codec.js";

function decodeAll(chunks: Buffer[], maxFrameBytes = 1024): string[] {
  const frames: string[] = [];
  const decoder = new FrameDecoder(maxFrameBytes, (text) => frames.push(text));
  for (const chunk of chunks) decoder.push(chunk);
  return frames;
}

test("frames split at any byte, or several in one chunk, come out whole and in order", () => {
  const bytes = Buffer.concat([encodeFrame({ type: "ready" }), encodeFrame({ text: "é€😀" })]);
  const oneByOne = [...bytes].map((byte) => Buffer.from([byte]));
  assert.deepEqual(decodeAll(oneByOne), ['{"type":"ready"}', '{"text":"é€😀"}']);
  assert.deepEqual(decodeAll([bytes]), ['{"type":"ready"}', '{"text":"é€😀"}']);
});

test("a length over the bound is refused from its header, before any of its body arrives", () => {
  const frames: string[] = [];
  const decoder = new FrameDecoder(1024, (text) => frames.push(text));
  assert.throws(() => decoder.push(Buffer.from("not json\n")), FrameError);
  assert.throws(() => decoder.push(Buffer.from("more")), FrameError);
  assert.deepEqual(frames, []);
});

test("a frame of length 0 is refused", () => {
  assert.throws(() => decodeAll([Buffer.alloc(4)]), /length 0/);
});

test("a frame begun and not finished holds only its own declared bytes", () => {
  const decoder = new FrameDecoder(1024, () => assert.fail("no frame is complete"));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1000);
  decoder.push(Buffer.concat([header, Buffer.alloc(10)]));
  assert.equal(decoder.pendingBytes, 14);
});
