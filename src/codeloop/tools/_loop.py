"""One background event loop that sync code uses to drive coroutines.

Sync callers (a CodeAgent's code calling an async tool, the sync agent talking to an MCP server) hand their
coroutines to a single long-lived loop on a daemon thread rather than spinning up a fresh loop per call, so
resources bound to a loop (MCP sessions, async HTTP clients) survive from one call to the next. It works
whether or not the calling thread already runs a loop of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .._threads import start_thread

__all__ = ["background_loop", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use on a daemon thread named `codeloop-async`."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = start_thread(serve, name="codeloop-async")
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` to completion from sync code and return its result (or raise its exception).

    On the background loop's own thread (a sync call nested inside a coroutine it runs) blocking would
    deadlock, so the coroutine gets a private loop on a helper thread instead.
    """
    loop = background_loop()
    if threading.current_thread() is _thread:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result(timeout)
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"the call did not finish within {timeout} s") from None
