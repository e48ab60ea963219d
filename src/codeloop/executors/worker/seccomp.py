"""The seccomp filter the sandbox worker installs on itself before it runs any agent code.

Built on the host as a classic-BPF program (bytes); the worker loads it with `prctl(PR_SET_SECCOMP)` after
setting `no_new_privs`. It is defense in depth under the bubblewrap boundary and the main barrier of the plain
subprocess fallback. What it refuses, and why:

- creating processes (`fork`, `vfork`, `clone` without `CLONE_THREAD`, `clone3`) and running programs (`execve`,
  `execveat`): agent code gets no shell and no fork bomb, even if a binary were reachable or written to /tmp.
  Threads stay allowed (`clone3` answers ENOSYS so the C library falls back to `clone`, whose flags we can see).
- namespaces, mounts and privilege plumbing (`unshare`, `setns`, `mount`, the new mount API, `pivot_root`,
  `chroot`), kernel attack surface with no use in agent code (`bpf`, `perf_event_open`, `userfaultfd`,
  `io_uring_*`, `keyctl` and friends, module and kexec loading, `name_to_handle_at`/`open_by_handle_at`,
  `ptrace`, `process_vm_*`, `pidfd_getfd`, `syslog`, `memfd_create`).
- creating System V IPC objects and POSIX message queues (`shmget`, `semget`, `msgget`, `mq_open`): they outlive
  the process that made them, so in a pooled sandbox (`SandboxPool`) they would carry state from one run into the
  next; nothing in agent code needs them (no fork means no one to share them with).
- sockets other than Unix, IPv4, IPv6 and netlink (notably AF_VSOCK, which a network namespace does not isolate:
  in a VM it can reach the hypervisor's agents).
- any system call made through another ABI (x32, or 32-bit `int 0x80` on x86_64).

Blocked calls fail with EPERM (ENOSYS for `clone3`, `memfd_create`); the worker is never killed by the filter.
Only x86_64 and aarch64 are described; elsewhere `build_filter` returns None and the sandbox reports that the
filter is not active.
"""

from __future__ import annotations

import struct

__all__ = ["build_filter", "SUPPORTED_MACHINES"]

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38

_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # args[0] low 32 bits on little-endian machines

_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_ALLOWED_SOCKET_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK

_DENIED_COMMON = (
    "execve execveat ptrace process_vm_readv process_vm_writev unshare setns mount umount2 pivot_root chroot "
    "mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick keyctl add_key request_key bpf userfaultfd "
    "perf_event_open io_uring_setup io_uring_enter io_uring_register kexec_load kexec_file_load init_module "
    "finit_module delete_module name_to_handle_at open_by_handle_at pidfd_getfd syslog acct swapon swapoff reboot "
    "shmget semget msgget mq_open"
).split()

_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
        "userfaultfd": 323, "perf_event_open": 298, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "pidfd_getfd": 438, "syslog": 103, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
        "memfd_create": 319, "shmget": 29, "semget": 64, "msgget": 68, "mq_open": 240, "clone": 56, "clone3": 435,
        "socket": 41, "socketpair": 53,
    },
    "aarch64": {
        "execve": 221, "execveat": 281, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "userfaultfd": 282,
        "perf_event_open": 241, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "pidfd_getfd": 438, "syslog": 116, "acct": 89,
        "swapon": 224, "swapoff": 225, "reboot": 142, "memfd_create": 279, "shmget": 194, "semget": 190,
        "msgget": 186, "mq_open": 180, "clone": 220, "clone3": 435,
        "socket": 198, "socketpair": 199,
    },
}  # fmt: skip

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

SUPPORTED_MACHINES = tuple(_SYSCALLS)
"""Machines (`os.uname().machine`) the filter is written for."""


class _Program:
    """A tiny assembler: instructions with symbolic forward jump targets, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def emit(self, op: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((op, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (op, jt, jf, k) in enumerate(self.code):
            out += struct.pack("<HBBI", op, self._offset(index, jt), self._offset(index, jf), k)
        return bytes(out)

    def _offset(self, index: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        distance = self.labels[target] - index - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"seccomp jump to {target!r} out of range")
        return distance


def build_filter(machine: str) -> bytes | None:
    """The filter program for `machine` (as `os.uname().machine` names it), or None if it is not supported."""
    numbers = _SYSCALLS.get(machine)
    if numbers is None:
        return None
    prog = _Program()
    prog.emit(_LD_W_ABS, _OFFSET_ARCH)
    prog.emit(_JEQ_K, _AUDIT_ARCH[machine], 0, "deny")
    prog.emit(_LD_W_ABS, _OFFSET_NR)
    if machine == "x86_64":
        prog.emit(_JGE_K, _X32_SYSCALL_BIT, "deny", 0)
    denied = [name for name in ("fork", "vfork", *_DENIED_COMMON) if name in numbers]
    for name in denied:
        prog.emit(_JEQ_K, numbers[name], "deny", 0)
    prog.emit(_JEQ_K, numbers["clone3"], "nosys", 0)
    prog.emit(_JEQ_K, numbers["memfd_create"], "nosys", 0)
    prog.emit(_JEQ_K, numbers["clone"], "clone", 0)
    prog.emit(_JEQ_K, numbers["socket"], "socket", 0)
    prog.emit(_JEQ_K, numbers["socketpair"], "socket", 0)
    prog.emit(_RET_K, _SECCOMP_RET_ALLOW)

    prog.label("clone")
    prog.emit(_LD_W_ABS, _OFFSET_ARG0_LOW)
    prog.emit(_JSET_K, _CLONE_NAMESPACES, "deny", 0)
    prog.emit(_JSET_K, _CLONE_THREAD, "allow", "deny")

    prog.label("socket")
    prog.emit(_LD_W_ABS, _OFFSET_ARG0_LOW)
    for family in _ALLOWED_SOCKET_FAMILIES:
        prog.emit(_JEQ_K, family, "allow", 0)
    prog.emit(_RET_K, _SECCOMP_RET_ERRNO | _EPERM)

    prog.label("allow")
    prog.emit(_RET_K, _SECCOMP_RET_ALLOW)
    prog.label("nosys")
    prog.emit(_RET_K, _SECCOMP_RET_ERRNO | _ENOSYS)
    prog.label("deny")
    prog.emit(_RET_K, _SECCOMP_RET_ERRNO | _EPERM)
    return prog.assemble()
