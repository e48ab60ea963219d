"""What the sandbox worker does to its own process: resource limits, the CPU budget of a step, the signal mask,
dying with the host, the seccomp filter, and whether memory is left.

Standard library only, imported lazily where slow: the sandbox loads this on every start (see `bundle.py`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MEMORY_HEADROOM = 64 * 1024 * 1024


def has_memory_headroom() -> bool:
    """Whether 64 MiB can still be mapped: after a MemoryError, is the worker fit to keep its state?"""
    import mmap

    try:
        probe = mmap.mmap(-1, _MEMORY_HEADROOM)
    except (OSError, MemoryError, ValueError):
        return False
    probe.close()
    return True


def set_cpu_budget(seconds: Any) -> None:
    """Let the process use `seconds` more CPU time (RLIMIT_CPU's soft limit), when given a positive number."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(used + seconds) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ImportError, OSError, ValueError):
        pass


def apply_rlimits(limits: dict[str, Any]) -> list[str]:
    """Set each `RLIMIT_*` name to its [soft, hard] pair (None: unlimited); the problems met, as texts."""
    try:
        import resource
    except ImportError:
        return ["resource limits are not available on this platform"]
    problems = []
    for name, value in limits.items():
        number = getattr(resource, name, None)
        if not isinstance(number, int) or not isinstance(value, list) or len(value) != 2:
            problems.append(f"unknown resource limit {name}")
            continue
        soft, hard = (resource.RLIM_INFINITY if v is None else int(v) for v in value)
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    return problems


def unblock_signals() -> None:
    """Start from an empty signal mask: the host may start workers from a thread that blocks SIGINT/SIGTERM, and
    a mask survives fork and exec. (`_signal`, not `signal`: the latter imports enum, slow at every start.)"""
    try:
        import _signal

        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    except (ImportError, AttributeError, OSError):
        pass


_LIBC_HANDLE: list[Any] = []


def libc() -> Any:
    """The C library through ctypes, loaded once."""
    if not _LIBC_HANDLE:  # made once: a zygote's forked workers find it ready
        import ctypes

        _LIBC_HANDLE.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC_HANDLE[0]


def die_with_parent() -> list[str]:
    """Ask the kernel to kill this process when its parent dies; the problems met, as texts."""
    try:
        import signal

        parent = os.getppid()
        if libc().prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return ["could not ask to be killed with the host"]
        if os.getppid() != parent:
            os._exit(1)
    except (ImportError, OSError, AttributeError) as exc:
        return [f"could not ask to be killed with the host: {exc}"]
    return []


def install_seccomp(program: bytes) -> str | None:
    """Load the host-built BPF filter on this (still single-threaded) process; an error text or None."""
    try:
        import ctypes

        class _FilterProgram(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        c_library = libc()
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = _FilterProgram(len(program) // 8, ctypes.addressof(buffer))
        if c_library.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            return f"no_new_privs failed (errno {ctypes.get_errno()})"
        if c_library.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            return f"prctl failed (errno {ctypes.get_errno()})"
    except (ImportError, OSError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
