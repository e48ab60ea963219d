"""Helper threads that leave Ctrl-C to the main thread.

The kernel may deliver a process-wide SIGINT to any thread that does not block it. When a helper thread gets
it, CPython only sets a flag, and a main thread blocked in a socket read (a model call) would not see
KeyboardInterrupt until that read returned, maybe minutes later. Threads started here block SIGINT and
SIGTERM, so the signal always lands on the main thread and interrupts its blocking call at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["start_thread", "block_interrupts"]

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def block_interrupts() -> None:
    """Block SIGINT and SIGTERM in the calling thread (a thread-pool initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def start_thread(target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
    """Start a daemon thread running `target(*args)` with SIGINT and SIGTERM blocked from its first instant."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    # A new thread inherits the creator's signal mask, so block around start() and restore right after.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
