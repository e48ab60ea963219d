"""Many agents on LocalExecutor at once in one process: every run succeeds, nothing about the process changes, and
no thread outlives its agent.

The suite runs 300 concurrent runs (a correctness check, kept quick); `bench/concurrency.py` runs 1,000 and reports
speed. Before LocalExecutor stopped limiting the process's address space, a third to most of them failed with
"can't start new thread" and some never finished.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import threading
import time

from codeloop import CodeAgent
from codeloop.testing import ScriptedModel

CONCURRENT_RUNS = 300
SCRIPT = [
    "Thought: start.\n```python\nx = 1\nprint(x)\n```",
    "Thought: add.\n```python\nx += 1\nprint(x)\n```",
    "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
]


def _limits() -> dict[str, tuple[int, int]]:
    return {
        name: resource.getrlimit(getattr(resource, name))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    }


def _threads_left(before: set[threading.Thread], seconds: float = 10.0) -> list[str]:
    """Names of the threads started since `before` that are still alive after up to `seconds` of waiting.

    Compares thread objects, not counts: threads that earlier tests left behind may end while this test runs,
    and a count would then look settled while one of ours is still alive (or never settle at all).
    """
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


async def _run_many(n: int, close: bool) -> list[object]:
    async def one() -> object:
        agent = CodeAgent(tools=[], model=ScriptedModel(list(SCRIPT)), executor="local", verbosity_level=0)
        try:
            return await asyncio.wait_for(agent.arun("Compute 20."), timeout=120)
        finally:
            if close:
                agent.close()

    return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


def test_hundreds_of_concurrent_runs_with_default_settings_all_succeed_and_leave_nothing_behind() -> None:
    asyncio.run(_run_many(1, close=True))  # warm up: the run store and its files open once per process
    limits = _limits()
    fds = len(os.listdir("/proc/self/fd"))
    threads = set(threading.enumerate())
    results = asyncio.run(_run_many(CONCURRENT_RUNS, close=True))
    failures = [repr(r)[:200] for r in results if r != 20]
    assert failures == [], f"{len(failures)} of {CONCURRENT_RUNS} runs failed, e.g. {failures[:3]}"
    assert _limits() == limits
    assert _threads_left(threads) == []
    assert (
        len(os.listdir("/proc/self/fd")) <= fds + 2
    )  # asyncio.run's own selector may linger until collected


def test_agents_dropped_without_close_end_their_executor_threads() -> None:
    asyncio.run(_run_many(1, close=True))  # warm up: once-per-process threads start before the baseline
    threads = set(threading.enumerate())
    results = asyncio.run(_run_many(50, close=False))
    assert results == [20] * 50
    # each LocalExecutor ran its steps on a worker thread of its own; dropping the agent must end that thread
    assert _threads_left(threads) == []
