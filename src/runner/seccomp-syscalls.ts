/**
 * The system calls a strong sandbox may not make, with their numbers on the two architectures Kiln's
 * seccomp filter supports (x86_64 and aarch64; other tables differ and are refused, not guessed).
 */

/** Architectures with a syscall table here, by Node's `process.arch` name. */
export type SeccompArch = "x64" | "arm64";

export interface SeccompArchTable {
  /** `AUDIT_ARCH_*`: the filter refuses calls made under any other ABI (i386 via `int 0x80`). */
  auditArch: number;
  /** x86_64 only: the x32 ABI marks its calls with this bit; all are refused. */
  x32Bit?: number;
}

export const seccompArchTables: Readonly<Record<SeccompArch, SeccompArchTable>> = {
  x64: { auditArch: 0xc000003e, x32Bit: 0x40000000 },
  arm64: { auditArch: 0xc00000b7 },
};

/**
 * Refused outright: Docker's default profile refuses each of these to a container without the capability
 * that would unlock it. Most already fail without capabilities; the filter also closes those that an
 * unprivileged uid can make (keyrings, unprivileged BPF, perf, userfaultfd, io_uring, user namespaces).
 * `[name, x86_64, aarch64]`; null where the architecture has no such call.
 */
// prettier-ignore
export const refusedSyscalls: readonly (readonly [string, number | null, number | null])[] = [
  // Kernel keyrings outlive a sandbox (a uid's persistent keyring): no key may pass between sandboxes.
  ["add_key", 248, 217], ["request_key", 249, 218], ["keyctl", 250, 219],
  // Reading or writing another process's memory.
  ["ptrace", 101, 117], ["process_vm_readv", 310, 270], ["process_vm_writev", 311, 271],
  ["kcmp", 312, 272], ["pidfd_getfd", 438, 438],
  // Mounts and namespaces.
  ["mount", 165, 40], ["umount2", 166, 39], ["pivot_root", 155, 41], ["chroot", 161, 51],
  ["move_mount", 429, 429], ["open_tree", 428, 428], ["fsopen", 430, 430], ["fsconfig", 431, 431],
  ["fsmount", 432, 432], ["fspick", 433, 433], ["mount_setattr", 442, 442],
  ["unshare", 272, 97], ["setns", 308, 268],
  // Kernel attack surface an unprivileged process can otherwise reach.
  ["bpf", 321, 280], ["perf_event_open", 298, 241], ["userfaultfd", 323, 282],
  ["io_uring_setup", 425, 425], ["io_uring_enter", 426, 426], ["io_uring_register", 427, 427],
  ["fanotify_init", 300, 262],
  // The kernel itself, its modules and the machine.
  ["kexec_load", 246, 104], ["kexec_file_load", 320, 294], ["init_module", 175, 105],
  ["finit_module", 313, 273], ["delete_module", 176, 106], ["create_module", 174, null],
  ["get_kernel_syms", 177, null], ["query_module", 178, null], ["nfsservctl", 180, 42],
  ["acct", 163, 89], ["swapon", 167, 224], ["swapoff", 168, 225], ["reboot", 169, 142],
  ["syslog", 103, 116], ["vhangup", 153, 58], ["quotactl", 179, 60], ["quotactl_fd", 443, 443],
  ["lookup_dcookie", 212, 18], ["iopl", 172, null], ["ioperm", 173, null],
  ["uselib", 134, null], ["ustat", 136, null], ["sysfs", 139, null], ["_sysctl", 156, null],
  // The host's clock.
  ["settimeofday", 164, 170], ["clock_settime", 227, 112], ["clock_adjtime", 305, 266],
  ["adjtimex", 159, 171],
  // File handles bypass the mount namespace (the "shocker" escape).
  ["name_to_handle_at", 303, 264], ["open_by_handle_at", 304, 265],
];

/** Allowed only with arguments that cannot open a namespace or change the process's personality. */
export const guardedSyscalls = {
  clone: { x64: 56, arm64: 220 },
  /** Refused with ENOSYS, not EPERM, so that libc falls back to `clone`, whose flags the filter can see. */
  clone3: { x64: 435, arm64: 435 },
  personality: { x64: 135, arm64: 92 },
} as const;

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET, as Docker checks them. */
export const cloneNamespaceFlags = 0x7e020000;

/** PER_LINUX, PER_LINUX32, UNAME26, their union, and the query (0xffffffff): Docker's allowed values. */
export const allowedPersonalities: readonly number[] = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
