/**
 * The seccomp filter of a strong sandbox: a classic BPF program, given to bubblewrap with `--seccomp FD`
 * and applied to everything the sandbox runs.
 *
 * Docker's default profile is an allowlist; this is the list of what that profile refuses, and everything
 * else is allowed, so a syscall added by a newer kernel is not refused (the sandbox still has no
 * capabilities, its own uid, namespaces and cgroup). Left out of Docker's list on purpose: `mbind`,
 * `set_mempolicy`, `get_mempolicy`, `migrate_pages` and `move_pages` (Docker wants CAP_SYS_NICE for them;
 * they only place the caller's own pages, which the cgroup bounds anyway, and NUMA-aware runtimes fail
 * loudly without them), and `sethostname`/`setdomainname` (the sandbox's own uts namespace, and the kernel
 * already refuses them without CAP_SYS_ADMIN).
 */
import { endianness } from "node:os";
import {
  allowedPersonalities,
  cloneNamespaceFlags,
  guardedSyscalls,
  refusedSyscalls,
  seccompArchTables,
  type SeccompArch,
} from "./seccomp-syscalls.js";

const EPERM = 1;
const ENOSYS = 38;

/** `SECCOMP_RET_*` */
const retAllow = 0x7fff0000;
const retKillProcess = 0x80000000;
const retErrno = (errno: number) => 0x00050000 | errno;

/** Classic BPF opcodes (linux/bpf_common.h). */
const ldAbsWord = 0x20; // BPF_LD | BPF_W | BPF_ABS
const jeq = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const jge = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const jset = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const ret = 0x06; // BPF_RET | BPF_K

/** `struct seccomp_data` offsets; an argument's low 32 bits on a little-endian machine. */
const offsetNr = 0;
const offsetArch = 4;
const offsetArg0Low = 16;

interface Instruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const op = (code: number, k: number, jt = 0, jf = 0): Instruction => ({ code, jt, jf, k });

/** Why this machine cannot have the filter (so no strong isolation), or null when it can. */
export function seccompUnsupportedReason(arch: string = process.arch): string | null {
  if (!(arch in seccompArchTables))
    return `the seccomp filter has no syscall table for ${arch} (x64 and arm64 are supported)`;
  if (endianness() !== "LE") return "the seccomp filter supports little-endian machines only";
  return null;
}

/** The filter as bubblewrap reads it: `struct sock_filter` entries, 8 bytes each, native byte order. */
export function buildSeccompFilter(arch: string = process.arch): Buffer {
  const unsupported = seccompUnsupportedReason(arch);
  if (unsupported !== null) throw new Error(unsupported);
  const program = seccompProgram(arch as SeccompArch);
  const buffer = Buffer.alloc(program.length * 8);
  program.forEach(({ code, jt, jf, k }, index) => {
    buffer.writeUInt16LE(code, index * 8);
    buffer.writeUInt8(jt, index * 8 + 2);
    buffer.writeUInt8(jf, index * 8 + 3);
    buffer.writeUInt32LE(k >>> 0, index * 8 + 4);
  });
  return buffer;
}

function seccompProgram(arch: SeccompArch): Instruction[] {
  const table = seccompArchTables[arch];
  const program: Instruction[] = [
    op(ldAbsWord, offsetArch),
    // Another ABI numbers its calls differently: nothing here would match, so it may not run at all.
    op(jeq, table.auditArch, 1, 0),
    op(ret, retKillProcess),
    op(ldAbsWord, offsetNr),
  ];
  if (table.x32Bit !== undefined) program.push(op(jge, table.x32Bit, 0, 1), op(ret, retErrno(EPERM)));
  for (const [, x64, arm64] of refusedSyscalls) {
    const nr = arch === "x64" ? x64 : arm64;
    if (nr !== null) program.push(op(jeq, nr, 0, 1), op(ret, retErrno(EPERM)));
  }
  program.push(op(jeq, guardedSyscalls.clone3[arch], 0, 1), op(ret, retErrno(ENOSYS)));
  // Threads and child processes use clone; only namespace flags are refused.
  program.push(
    op(jeq, guardedSyscalls.clone[arch], 0, 4),
    op(ldAbsWord, offsetArg0Low),
    op(jset, cloneNamespaceFlags, 0, 1),
    op(ret, retErrno(EPERM)),
    op(ret, retAllow),
  );
  const count = allowedPersonalities.length;
  program.push(
    op(jeq, guardedSyscalls.personality[arch], 0, count + 3),
    op(ldAbsWord, offsetArg0Low),
    ...allowedPersonalities.map((value, index) => op(jeq, value, count - index, 0)),
    op(ret, retErrno(EPERM)),
    op(ret, retAllow),
  );
  program.push(op(ret, retAllow));
  return program;
}
