import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { UidAllocator } from "./uid-allocator.js";

async function claimsDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "kiln-uids-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("hands uids out in order, never twice, claiming a further block when one is used up", async (t) => {
  const dir = await claimsDir(t);
  const allocator = new UidAllocator({ dir, firstUid: 1000, blockSize: 3, blockCount: 4 });
  const uids = Array.from({ length: 7 }, () => allocator.allocate());
  assert.deepEqual(uids, [1000, 1001, 1002, 1003, 1004, 1005, 1006]);
  assert.deepEqual((await readdir(dir)).sort(), ["block-0.0", "block-1.0", "block-2.0"]);
});

test("a second node on the host gets other blocks while the first lives", async (t) => {
  const dir = await claimsDir(t);
  const options = { dir, firstUid: 1000, blockSize: 10, blockCount: 4 };
  const first = new UidAllocator(options);
  const second = new UidAllocator(options);
  assert.equal(first.allocate(), 1000);
  assert.equal(second.allocate(), 1010, "block 0 is held by a live process");
});

test("a block whose owner process has ended is taken over", async (t) => {
  const dir = await claimsDir(t);
  // pid 2^22 + 1 is above the kernel's pid_max: no process has it.
  await writeFile(path.join(dir, "block-0.4"), "4194305 12345\n");
  const allocator = new UidAllocator({ dir, firstUid: 1000, blockSize: 10, blockCount: 4 });
  assert.equal(allocator.allocate(), 1000);
  assert.deepEqual(await readdir(dir), ["block-0.5"]);
});

test("says which range is used up when every block is held", async (t) => {
  const dir = await claimsDir(t);
  const allocator = new UidAllocator({ dir, firstUid: 1000, blockSize: 1, blockCount: 2 });
  allocator.allocate();
  allocator.allocate();
  assert.throws(() => allocator.allocate(), /every block of sandbox uids \(1000 to 1001\) is in use/);
});

test("nodes claiming at the same time hand out disjoint uids", async (t) => {
  const dir = await claimsDir(t);
  const module = path.join(path.dirname(fileURLToPath(import.meta.url)), "uid-allocator.js");
  const script = `
    const { UidAllocator } = await import(${JSON.stringify(module)});
    const allocator = new UidAllocator({ dir: ${JSON.stringify(dir)}, firstUid: 0, blockSize: 5, blockCount: 100 });
    const uids = Array.from({ length: 40 }, () => allocator.allocate());
    process.stdout.write(JSON.stringify(uids));
    setTimeout(() => {}, 500); // stays alive while the others claim
  `;
  const nodes = Array.from({ length: 4 }, () => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    return new Promise<number[]>((resolve, reject) =>
      child.on("close", (code) =>
        code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`exit ${code}`)),
      ),
    );
  });
  const all = (await Promise.all(nodes)).flat();
  assert.equal(all.length, 160);
  assert.equal(new Set(all).size, 160, "no uid handed out by two nodes");
});
