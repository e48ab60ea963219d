"""Process-level mechanisms LocalExecutor uses to stop agent code: exceptions injected into its thread, and an
address-space limit while a step runs.

Both act on the whole interpreter, which is why they live apart from the executor: one place to read when judging
what an in-process executor can and cannot guarantee.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["inject_exception", "clear_injected_exception", "address_space_budget", "address_space_bytes"]

# private prototypes: setting argtypes on ctypes.pythonapi's shared function object would change it for everyone
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def inject_exception(thread_id: int, exception_type: type[BaseException]) -> bool:
    """Raise `exception_type` in thread `thread_id` at its next bytecode boundary; False if no such thread.

    Native code (a long C call, a blocking system call) is not interrupted: the exception arrives when it returns.
    """
    return _set_async_exc(thread_id, exception_type) == 1


def clear_injected_exception(thread_id: int) -> None:
    """Withdraw an injected exception that the thread has not raised yet."""
    _clear_async_exc(thread_id, None)


def address_space_bytes() -> int | None:
    """This process's current virtual memory size, or None where /proc is not available."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Budget:
    """Reference-counted RLIMIT_AS so concurrent steps of several executors add up instead of clobbering."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.saved: tuple[int, int] | None = None
        self.soft = 0

    def enter(self, limit_bytes: int) -> bool:
        import resource

        with self.lock:
            current = address_space_bytes()
            if current is None:
                return False
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if self.active == 0:
                self.saved = (soft, hard)
                target = current + limit_bytes
            else:
                target = self.soft + limit_bytes
            ceiling = [v for v in (self.saved[0] if self.saved else soft, hard) if v != resource.RLIM_INFINITY]
            if ceiling:
                target = min(target, *ceiling)
            try:
                resource.setrlimit(resource.RLIMIT_AS, (target, hard))
            except (ValueError, OSError):
                if self.active == 0:
                    self.saved = None
                return False
            self.soft = target
            self.active += 1
            return True

    def leave(self, limit_bytes: int) -> None:
        import resource

        with self.lock:
            self.active -= 1
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if self.active == 0 and self.saved is not None:
                resource.setrlimit(resource.RLIMIT_AS, self.saved)
                self.saved = None
            elif self.active > 0:
                self.soft -= limit_bytes
                resource.setrlimit(resource.RLIMIT_AS, (self.soft, hard))


_BUDGET = _Budget()


@contextmanager
def address_space_budget(limit_bytes: int | None) -> Iterator[bool]:
    """While the block runs, the process may grow by at most `limit_bytes` of address space (RLIMIT_AS).

    Yields whether the limit is in force (False on platforms without /proc or RLIMIT_AS, or with None). The limit
    applies to the whole process: other threads allocating during the block share the same headroom.
    """
    if limit_bytes is None:
        yield False
        return
    entered = _BUDGET.enter(limit_bytes)
    try:
        yield entered
    finally:
        if entered:
            _BUDGET.leave(limit_bytes)
