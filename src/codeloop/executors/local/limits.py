"""Mechanisms LocalExecutor uses to stop agent code: exceptions injected into its thread, a timer signal for the
main thread, and a tripwire on the process's resident memory while a step runs.

None of them changes the process's limits: they live apart from the executor so there is one place to read when
judging what an in-process executor can and cannot guarantee.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "inject_exception",
    "clear_injected_exception",
    "resident_bytes",
    "MemoryTripwire",
    "ThreadTimer",
]

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


def resident_bytes() -> int | None:
    """This process's resident memory (RSS) right now, or None where /proc is not available."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return None
    try:
        pages = int(os.read(fd, 256).split()[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)
    return pages * _PAGE_SIZE


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryTripwire:
    """Tells whether this process's resident memory grew by more than `limit_bytes` since the tripwire was made.

    It only reads /proc/self/statm: nothing about the process (limits, allocator, other threads) is changed. The
    measure is the whole process's, so memory that other threads allocate meanwhile counts too; and it is a
    sample, so it can only say so after the fact — it cannot refuse one allocation before it happens.
    """

    __slots__ = ("limit_bytes", "baseline")

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.baseline = resident_bytes()

    def tripped(self) -> bool:
        """True once resident memory exceeds the baseline by more than the limit (never where /proc is missing)."""
        if self.baseline is None:
            return False
        now = resident_bytes()
        return now is not None and now - self.baseline > self.limit_bytes


# --- a per-thread POSIX timer delivering a signal (Linux) --------------------------------------------------------------


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


class _SigEvent(ctypes.Structure):
    # struct sigevent on Linux: sigval, signo, notify, then a 48-byte union whose first int is the target thread id
    _fields_ = [
        ("sigev_value", ctypes.c_void_p),
        ("sigev_signo", ctypes.c_int),
        ("sigev_notify", ctypes.c_int),
        ("sigev_notify_thread_id", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


_SIGEV_THREAD_ID = 4
_CLOCK_MONOTONIC = 1


def _seconds_to_timespec(seconds: float) -> _TimeSpec:
    whole = int(seconds)
    return _TimeSpec(whole, int((seconds - whole) * 1e9))


class ThreadTimer:
    """A POSIX timer that sends `signum` to one thread: first after a delay, then every `interval` seconds.

    Signal-driven interruption reaches places an injected exception cannot: CPython's regex engine checks for
    signals while it backtracks, and blocking calls return early with EINTR. Linux only (SIGEV_THREAD_ID).
    """

    def __init__(self, signum: int, thread_native_id: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            self._create, self._settime, self._delete = (
                libc.timer_create,
                libc.timer_settime,
                libc.timer_delete,
            )
        except AttributeError:  # glibc < 2.34 keeps the timer functions in librt
            librt = ctypes.CDLL("librt.so.1", use_errno=True)
            self._create, self._settime, self._delete = (
                librt.timer_create,
                librt.timer_settime,
                librt.timer_delete,
            )
        self._create.argtypes = (ctypes.c_int, ctypes.POINTER(_SigEvent), ctypes.POINTER(ctypes.c_void_p))
        self._settime.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_ITimerSpec), ctypes.c_void_p)
        self._delete.argtypes = (ctypes.c_void_p,)
        event = _SigEvent()
        event.sigev_signo = signum
        event.sigev_notify = _SIGEV_THREAD_ID
        event.sigev_notify_thread_id = thread_native_id
        self._timer = ctypes.c_void_p()
        if self._create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(self._timer)) != 0:
            raise OSError(ctypes.get_errno(), "timer_create failed")

    def arm(self, delay: float, interval: float) -> None:
        """Fire after `delay` seconds, then every `interval` seconds until disarmed."""
        spec = _ITimerSpec(_seconds_to_timespec(interval), _seconds_to_timespec(max(delay, 1e-6)))
        if self._settime(self._timer, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timer_settime failed")

    def disarm(self) -> None:
        """Stop firing (a signal already delivered may still be handled once)."""
        self._settime(self._timer, 0, ctypes.byref(_ITimerSpec()), None)
