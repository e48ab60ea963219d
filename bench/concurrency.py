"""Many agents at once in one process: N concurrent `arun()` of a scripted 3-step CodeAgent.

    .venv/bin/python bench/concurrency.py [--local 10,100,1000] [--sandbox 10,50,200] [--pool 1000]
                                          [--concurrency C] [--pool-size P] [--timeout 600]

`--pool` runs the sandboxed agents on one `SandboxPool(size=P)` (default P: 2C, or 8), made and warmed before the
clock starts, and compares its runs/s with LocalExecutor's on the same batch run just before and after it in the
same process (`vs_local_percent`, as the machine's load drifts); `--concurrency C` lets at most C runs be in flight at once (a batch runner's setting; default: all
N at once), for every executor alike, so LocalExecutor and the pool are compared on the same batch.

Each configuration runs in a fresh interpreter (so peak memory is its own): N agents, each with its own executor and
a scripted zero-latency model, run `arun()` concurrently under one asyncio loop; every agent is closed when its run
ends. A sampler thread records, every 50 ms, the host's threads and open file descriptors, the number of processes
below the host (sandbox workers) and the resident memory of the host plus those processes. Printed per
configuration: runs/s (N over the wall time of the whole batch), failures (runs that raised or returned a wrong
answer, plus runs still unfinished at the timeout), the peaks, and threads / fds / processes left once every agent
is closed, and the CPU time per run of this process (and, for the pool, of its sandboxes, counting the workers
its zygotes forked and reaped; a cold sandbox's processes are killed, not reaped, so theirs is not counted). Model time is zero, so this measures the framework and the executor
under contention, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

SCRIPT = [
    "Thought: start.\n```python\nx = 1\nprint(x)\n```",
    "Thought: add.\n```python\nx += 1\nprint(x)\n```",
    "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
]
EXPECTED = 20


def _descendants() -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _rss(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _descendants_cpu() -> float:
    """CPU seconds used by the processes below this one, and by the children they reaped (forked workers)."""
    ticks = 0
    for pid in _descendants():
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            ticks += sum(int(value) for value in fields[11:15])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def _snapshot() -> dict[str, int]:
    processes = _descendants()
    return {
        "threads": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
        "processes": len(processes),
        "rss": _rss("self") + sum(_rss(pid) for pid in processes),
    }


class Sampler:
    """Peaks of `_snapshot()` while running."""

    def __init__(self) -> None:
        self.peak = _snapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for key, value in _snapshot().items():
                self.peak[key] = max(self.peak[key], value)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


async def _batch(executor: Any, n: int, timeout: float, concurrency: int | None = None) -> list[Any]:
    from codeloop import CodeAgent
    from codeloop.testing import ScriptedModel

    gate = asyncio.Semaphore(concurrency or n)
    if concurrency:
        # Steps run in asyncio's default thread pool (6 threads on 2 cores); with a cap, give every run in flight
        # a thread, as a batch runner would, so that C runs can wait for their executor at once.
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=concurrency))

    async def one() -> Any:
        async with gate:
            agent = CodeAgent(
                tools=[], model=ScriptedModel(list(SCRIPT)), executor=executor, verbosity_level=0
            )
            try:
                return await agent.arun("Compute 20.")
            finally:
                await asyncio.to_thread(agent.close)

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    results: list[Any] = [
        task.exception() or task.result() if task in done else TimeoutError(f"unfinished after {timeout:g} s")
        for task in tasks
    ]
    return results


def child(
    executor: str, n: int, timeout: float, concurrency: int | None = None, pool_size: int = 8
) -> dict[str, Any]:
    """Run one configuration in this process and return its figures."""
    import gc
    import warnings

    warnings.simplefilter("ignore")  # the sandbox warns once per executor when bubblewrap is missing
    pool = None
    spec: Any = executor
    if executor == "pool":
        from codeloop.executors import SandboxPool

        spec = pool = SandboxPool(size=pool_size)
        pool.wait_ready(timeout=120)

    def local_rate() -> float:
        start = time.perf_counter()
        asyncio.run(_batch("local", n, timeout, concurrency))
        return n / (time.perf_counter() - start)

    # The machine's load drifts between configurations; the pool is also compared with LocalExecutor on the same
    # batch in this same process, just before and just after it.
    local_before = local_rate() if pool is not None else 0.0
    with Sampler() as sampler:
        host_cpu, sandbox_cpu = time.process_time(), _descendants_cpu()
        start = time.perf_counter()
        results = asyncio.run(_batch(spec, n, timeout, concurrency))
        seconds = time.perf_counter() - start
        if pool is not None:
            pool.wait_ready(timeout=120)  # the last workers' recycling is part of the batch's cost
        host_cpu, sandbox_cpu = time.process_time() - host_cpu, _descendants_cpu() - sandbox_cpu
    local_after = local_rate() if pool is not None else 0.0
    stats = dict(pool.stats) if pool is not None else {}
    if pool is not None:
        stats["vs_local_percent"] = round(100 * (n / seconds) / ((local_before + local_after) / 2))
    if pool is not None:
        pool.close()
    gc.collect()
    time.sleep(0.5)  # let closed workers and threads finish exiting
    after = _snapshot()
    failures = [r for r in results if r != EXPECTED]
    return {
        "executor": executor,
        "n": n,
        "seconds": seconds,
        "runs_per_s": n / seconds,
        "failures": len(failures),
        "failure_example": repr(failures[0])[:160] if failures else "",
        "peak": sampler.peak,
        "after": after,
        "pool": stats,
        "cpu_ms_per_run": [round(host_cpu / n * 1e3, 2), round(sandbox_cpu / n * 1e3, 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", default="10,100,1000", help="N values for LocalExecutor ('' to skip)")
    parser.add_argument("--sandbox", default="10,50,200", help="N values for SandboxExecutor ('' to skip)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a batch may take before it counts"
    )
    parser.add_argument("--pool", default="", help="N values for a warm SandboxPool ('' to skip)")
    parser.add_argument("--concurrency", type=int, default=None, help="runs in flight at once (default: all)")
    parser.add_argument("--pool-size", type=int, default=None, help="SandboxPool size (default: 2C, or 8)")
    parser.add_argument("--child", nargs=2, metavar=("EXECUTOR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    pool_size = args.pool_size or (2 * args.concurrency if args.concurrency else 8)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.timeout, args.concurrency, pool_size)))
        return
    plan = (
        [("local", int(n)) for n in args.local.split(",") if n]
        + [("sandbox", int(n)) for n in args.sandbox.split(",") if n]
        + [("pool", int(n)) for n in args.pool.split(",") if n]
    )
    if args.concurrency:
        print(f"at most {args.concurrency} runs in flight; pool size {pool_size}")
    header = (
        f"{'executor':<9}{'N':>6}{'runs/s':>9}{'wall s':>8}{'failures':>10}{'peak RSS MiB':>14}{'threads':>9}"
        f"{'fds':>6}{'procs':>7}   after: threads/fds/procs"
    )
    print(header)
    print("-" * len(header))
    for executor, n in plan:
        command = [sys.executable, __file__, "--child", executor, str(n), "--timeout", str(args.timeout)]
        command += ["--pool-size", str(pool_size)]
        if args.concurrency:
            command += ["--concurrency", str(args.concurrency)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + 120)
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
            print(f"{executor:<9}{n:>6}  did not finish: {type(exc).__name__}")
            continue
        peak, after = row["peak"], row["after"]
        print(
            f"{executor:<9}{n:>6}{row['runs_per_s']:>9.1f}{row['seconds']:>8.1f}{row['failures']:>10}"
            f"{peak['rss'] / 2**20:>14.0f}{peak['threads']:>9}{peak['fds']:>6}{peak['processes']:>7}"
            f"   {after['threads']}/{after['fds']}/{after['processes']}"
            + (f"   e.g. {row['failure_example']}" if row["failures"] else "")
            + f"   CPU ms/run: host {row['cpu_ms_per_run'][0]}"
            + (f" + sandboxes {row['cpu_ms_per_run'][1]}" if row.get("pool") else "")
            + (f"   pool: {row['pool']}" if row.get("pool") else "")
        )


if __name__ == "__main__":
    main()
