"""A Kiln `exec` function that tries the host boundary from inside a strong sandbox, one way per
`payload["action"]`, and prints what it saw as JSON: raw system calls through ctypes, its uid, its env."""
import ctypes
import errno
import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time

# Syscall numbers: x86_64, aarch64.
NUMBERS = {
    "add_key": (248, 217),
    "keyctl": (250, 219),
    "ptrace": (101, 117),
    "mount": (165, 40),
    "unshare": (272, 97),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
}
KEY_SPEC_USER_KEYRING = -4
CLONE_NEWUSER = 0x10000000
UFFD_USER_MODE_ONLY = 1

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def syscall(name, *args):
    """The call's errno name, or "allowed" when the kernel let it through."""
    nr = NUMBERS[name][0 if platform.machine() == "x86_64" else 1]
    ctypes.set_errno(0)
    if libc.syscall(ctypes.c_long(nr), *args) >= 0:
        return "allowed"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def attempts():
    buffer = ctypes.create_string_buffer(256)
    return {
        "add_key": syscall("add_key", b"user", b"kiln-probe", b"secret", ctypes.c_size_t(6), ctypes.c_long(KEY_SPEC_USER_KEYRING)),
        "keyctl": syscall("keyctl", ctypes.c_long(0), ctypes.c_long(KEY_SPEC_USER_KEYRING), ctypes.c_long(1)),
        "ptrace": syscall("ptrace", ctypes.c_long(0), ctypes.c_long(0), None, None),
        "mount": syscall("mount", b"none", b"/tmp", b"tmpfs", ctypes.c_long(0), None),
        "unshare": syscall("unshare", ctypes.c_long(CLONE_NEWUSER)),
        "bpf": syscall("bpf", ctypes.c_long(0), buffer, ctypes.c_long(72)),
        "perf_event_open": syscall("perf_event_open", buffer, ctypes.c_long(0), ctypes.c_long(-1), ctypes.c_long(-1), ctypes.c_long(0)),
        "userfaultfd": syscall("userfaultfd", ctypes.c_long(UFFD_USER_MODE_ONLY)),
        "io_uring_setup": syscall("io_uring_setup", ctypes.c_long(1), buffer),
    }


def ordinary_work():
    seen = []
    thread = threading.Thread(target=lambda: seen.append("thread"))
    thread.start()
    thread.join()
    child = subprocess.run(["sh", "-c", "echo child"], capture_output=True, text=True, check=True)
    seen.append(child.stdout.strip())
    with open("/tmp/probe.txt", "w") as file:
        file.write("file")
    with open("/tmp/probe.txt") as file:
        seen.append(file.read())
    return seen


def main():
    payload = json.loads(sys.stdin.read() or "{}")
    action = payload.get("action")
    if action == "syscalls":
        result = {"refused": attempts(), "ordinary": ordinary_work()}
    elif action == "uid":
        result = os.getuid()
    elif action == "hold-secret":
        time.sleep(payload.get("seconds", 3))
        secret = os.environ.get("KILN_PROBE_SECRET", "")
        result = hashlib.sha256(secret.encode()).hexdigest()
    else:
        raise SystemExit(f"unknown action {action!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
