"""Sandbox latency: cold start, tiny-snippet round trip, tool-call RPC round trip (and compute speed vs native).

    .venv/bin/python bench/sandbox_latency.py [--starts N] [--trips N] [--calls N] [--acquires N]

Measured for SandboxExecutor with bubblewrap (when it works here) and, side by side, for the plain-subprocess
fallback:
  - cold start: a new executor until its first tiny step has returned (`SandboxExecutor(); run("1")`), median and
    90th percentile over N starts; the very first start in a process also works out the sandbox's mount plan
    (reading ELF headers) and is shown separately;
  - round trip: `run("x = 1")` on a warm executor, p50/p99 over N steps (host -> worker -> host, one message each way);
  - tool call: inside one step, N calls of a host tool `echo(i)`, each timed in the sandbox, p50/p99 (one RPC);
  - compute: `fib(24)` in the sandbox vs native `exec` in this process (the code runs as real CPython in both);
  - pool: a ready sandbox from a warm `SandboxPool(size=4)`: `pool.new_executor(); run("1")`, the same measure as
    the cold start, p50/p95 over N acquisitions, each after the pool has refilled (`wait_ready`), and back to back
    (the previous executor closed just before, so its sandbox is still being recycled).
Targets from the issue: cold start <= 50 ms, round trip <= 200 us median, compute at native speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from codeloop.executors.transports.sandbox import SandboxExecutor, isolation_problem  # noqa: E402

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nresult = fib(24)\n"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def cold_starts(isolation: str, count: int) -> tuple[float, list[float]]:
    def once() -> float:
        started = time.perf_counter()
        executor = SandboxExecutor(isolation=isolation)
        executor.run("1")
        elapsed = time.perf_counter() - started
        executor.close()
        return elapsed

    first = once()
    return first, [once() for _ in range(count)]


def round_trips(executor: SandboxExecutor, count: int) -> list[float]:
    executor.run("x = 1")
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        executor.run("x = 1")
        samples.append(time.perf_counter() - started)
    return samples


def tool_calls(executor: SandboxExecutor, count: int) -> list[float]:
    executor.send_tools({"echo": lambda value: value})
    code = (
        "import time\nsamples = []\n"
        f"for i in range({count}):\n"
        "    t = time.perf_counter()\n    echo(i)\n    samples.append(time.perf_counter() - t)\n"
        "samples"
    )
    samples = executor.run(code).output
    assert isinstance(samples, list)
    return [float(s) for s in samples]


def compute(executor: SandboxExecutor, repeat: int = 5) -> tuple[float, float]:
    native_namespace: dict[str, object] = {}
    native = []
    sandboxed = []
    executor.run(FIB)
    exec(FIB, native_namespace)
    for _ in range(repeat):
        started = time.perf_counter()
        exec(FIB, native_namespace)
        native.append(time.perf_counter() - started)
        started = time.perf_counter()
        executor.run(FIB)
        sandboxed.append(time.perf_counter() - started)
    return statistics.median(native), statistics.median(sandboxed)


def pool_acquires(isolation: str, count: int) -> tuple[list[float], list[float]]:
    from codeloop.executors import SandboxPool

    def once(pool: SandboxPool) -> float:
        started = time.perf_counter()
        executor = pool.new_executor()
        executor.run("1")
        elapsed = time.perf_counter() - started
        executor.close()
        return elapsed

    with SandboxPool(size=4, isolation=isolation) as pool:
        pool.wait_ready(timeout=60)
        refilled = []
        for _ in range(count):
            pool.wait_ready(timeout=60)
            refilled.append(once(pool))
        back_to_back = [once(pool) for _ in range(count)]
    return refilled, back_to_back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--trips", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--acquires", type=int, default=200)
    args = parser.parse_args()
    modes = ["subprocess"] if isolation_problem() else ["bubblewrap", "subprocess"]
    if isolation_problem():
        print(f"note: {isolation_problem()}; only the fallback is measured")
    rows = []
    for mode in modes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, starts = cold_starts("auto" if mode == "bubblewrap" else "subprocess", args.starts)
            with SandboxExecutor(
                isolation="auto" if mode == "bubblewrap" else "subprocess", timeout=60
            ) as executor:
                trips = round_trips(executor, args.trips)
                calls = tool_calls(executor, args.calls)
                native, sandboxed = compute(executor)
                seccomp = executor.seccomp_active
            pooled, back_to_back = pool_acquires(
                "auto" if mode == "bubblewrap" else "subprocess", args.acquires
            )
        rows.append((mode, first, starts, trips, calls, native, sandboxed, seccomp, pooled, back_to_back))

    print(
        f"Python {sys.version.split()[0]}; {args.starts} cold starts, {args.trips} round trips, {args.calls} tool calls\n"
    )
    header = f"{'':34}" + "".join(f"{mode:>16}" for mode, *_ in rows)
    print(header)

    def line(label: str, values: list[str]) -> None:
        print(f"{label:34}" + "".join(f"{v:>16}" for v in values))

    line("cold start, first in process", [f"{r[1] * 1e3:.1f} ms" for r in rows])
    line("cold start p50 (target <= 50 ms)", [f"{statistics.median(r[2]) * 1e3:.1f} ms" for r in rows])
    line("cold start p90", [f"{percentile(r[2], 0.9) * 1e3:.1f} ms" for r in rows])
    line("from pool p50 (target <= 5 ms)", [f"{statistics.median(r[8]) * 1e3:.2f} ms" for r in rows])
    line("from pool p95", [f"{percentile(r[8], 0.95) * 1e3:.2f} ms" for r in rows])
    line("from pool, back to back p50", [f"{statistics.median(r[9]) * 1e3:.2f} ms" for r in rows])
    line("from pool, back to back p95", [f"{percentile(r[9], 0.95) * 1e3:.2f} ms" for r in rows])
    line("round trip p50 (target <= 200 us)", [f"{statistics.median(r[3]) * 1e6:.0f} us" for r in rows])
    line("round trip p99", [f"{percentile(r[3], 0.99) * 1e6:.0f} us" for r in rows])
    line("tool call p50", [f"{statistics.median(r[4]) * 1e6:.0f} us" for r in rows])
    line("tool call p99", [f"{percentile(r[4], 0.99) * 1e6:.0f} us" for r in rows])
    line("fib(24): native exec", [f"{r[5] * 1e3:.1f} ms" for r in rows])
    line("fib(24): in the sandbox", [f"{r[6] * 1e3:.1f} ms" for r in rows])
    line("fib(24): ratio sandbox/native", [f"{r[6] / r[5]:.2f}x" for r in rows])
    line("seccomp filter active", [str(r[7]) for r in rows])


if __name__ == "__main__":
    main()
