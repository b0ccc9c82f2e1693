import assert from "node:assert/strict";
import { test } from "node:test";
import { buildSeccompFilter, seccompUnsupportedReason } from "./seccomp-filter.js";

interface SeccompData {
  nr: number;
  arch: number;
  arg0?: number;
}

const x64 = 0xc000003e;
const arm64 = 0xc00000b7;
const i386 = 0x40000003;
const allow = 0x7fff0000;
const eperm = 0x00050001;
const enosys = 0x00050026;
const killProcess = 0x80000000;

/** Runs the filter as the kernel would, over the opcodes it uses: what the call `data` gets. */
function evaluate(filter: Buffer, data: SeccompData): number {
  const words = new Map([
    [0, data.nr],
    [4, data.arch],
    [16, data.arg0 ?? 0],
  ]);
  let accumulator = 0;
  for (let pc = 0; pc * 8 < filter.length; pc += 1) {
    const code = filter.readUInt16LE(pc * 8);
    const jt = filter.readUInt8(pc * 8 + 2);
    const jf = filter.readUInt8(pc * 8 + 3);
    const k = filter.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) accumulator = words.get(k) ?? assert.fail(`load of offset ${k}`);
    else if (code === 0x06) return k;
    else if (code === 0x15) pc += accumulator === k ? jt : jf;
    else if (code === 0x35) pc += accumulator >= k ? jt : jf;
    else if (code === 0x45) pc += (accumulator & k) !== 0 ? jt : jf;
    else assert.fail(`unexpected opcode ${code}`);
  }
  return assert.fail("the filter fell off its end");
}

test("x86_64: keyrings, ptrace, mount, bpf, perf, userfaultfd and unshare are refused with EPERM", () => {
  const filter = buildSeccompFilter("x64");
  for (const nr of [248, 249, 250, 101, 165, 321, 298, 323, 272, 308, 425, 303, 304]) {
    assert.equal(evaluate(filter, { nr, arch: x64 }), eperm, `syscall ${nr}`);
  }
});

test("x86_64: ordinary calls are allowed", () => {
  const filter = buildSeccompFilter("x64");
  // read, write, openat, mmap, futex, execve, wait4, exit_group
  for (const nr of [0, 1, 257, 9, 202, 59, 61, 231]) {
    assert.equal(evaluate(filter, { nr, arch: x64 }), allow, `syscall ${nr}`);
  }
});

test("clone makes threads and processes but no namespace; clone3 says ENOSYS so libc falls back", () => {
  const filter = buildSeccompFilter("x64");
  const threadFlags = 0x3d0f00; // what glibc's pthread_create passes
  assert.equal(evaluate(filter, { nr: 56, arch: x64, arg0: threadFlags }), allow);
  assert.equal(evaluate(filter, { nr: 56, arch: x64, arg0: 0x01200011 }), allow, "fork()");
  assert.equal(evaluate(filter, { nr: 56, arch: x64, arg0: 0x10000000 | 17 }), eperm, "CLONE_NEWUSER");
  assert.equal(evaluate(filter, { nr: 56, arch: x64, arg0: 0x20000 }), eperm, "CLONE_NEWNS");
  assert.equal(evaluate(filter, { nr: 435, arch: x64 }), enosys);
});

test("personality may be queried or set to Linux, not to anything else", () => {
  const filter = buildSeccompFilter("x64");
  assert.equal(evaluate(filter, { nr: 135, arch: x64, arg0: 0xffffffff }), allow);
  assert.equal(evaluate(filter, { nr: 135, arch: x64, arg0: 0 }), allow);
  assert.equal(evaluate(filter, { nr: 135, arch: x64, arg0: 0x0040000 }), eperm, "ADDR_NO_RANDOMIZE");
});

test("x32 calls are refused and i386 calls kill the process", () => {
  const filter = buildSeccompFilter("x64");
  assert.equal(evaluate(filter, { nr: 0x40000000 | 0, arch: x64 }), eperm);
  assert.equal(evaluate(filter, { nr: 3, arch: i386 }), killProcess);
});

test("aarch64 uses its own numbers", () => {
  const filter = buildSeccompFilter("arm64");
  assert.equal(evaluate(filter, { nr: 219, arch: arm64 }), eperm, "keyctl");
  assert.equal(evaluate(filter, { nr: 117, arch: arm64 }), eperm, "ptrace");
  assert.equal(evaluate(filter, { nr: 220, arch: arm64, arg0: 0x10000000 }), eperm, "clone NEWUSER");
  assert.equal(evaluate(filter, { nr: 250, arch: arm64 }), allow, "x86_64's keyctl number is another call");
  assert.equal(evaluate(filter, { nr: 219, arch: x64 }), killProcess, "an x86_64 call on arm64");
});

test("an architecture without a table is refused with the reason", () => {
  assert.match(seccompUnsupportedReason("riscv64") ?? "", /no syscall table for riscv64/);
  assert.throws(() => buildSeccompFilter("ia32"), /x64 and arm64 are supported/);
});
