"""Executor speed: native `exec` vs LocalExecutor (and SandboxExecutor, smolagents' LocalPythonExecutor if present).

    .venv/bin/python bench/executor_speed.py [--repeat N]

Five snippets, each run N times per executor; the figure is the median wall time of one run, and the ratio is
that median over native `exec`'s. The geometric mean of the five ratios is the headline number. Native runs
`exec(source, namespace)` with one persistent namespace per snippet (compiling the source each time); executors run
`executor.run(source)` on one persistent executor, which is how an agent uses them. LocalExecutor is measured
twice: called from the main thread (runs inline, stopped by a timer signal) and from another thread (runs on its
worker thread). A second table gives the fixed cost of one step for a never-seen tiny snippet (no code cache).
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

SNIPPETS: dict[str, str] = {
    "loop s+=i*i (200k)": "s = 0\nfor i in range(200_000):\n    s += i * i\n",
    "list comp (200k)": "squares = [i * i for i in range(200_000)]\n",
    "fib(20) recursive": (
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nresult = fib(20)\n"
    ),
    "str join (20k)": 'text = "".join(str(i) for i in range(20_000))\n',
    "dict 50k summed": "d = {i: i * 2 for i in range(50_000)}\ntotal = sum(d.values())\n",
}


def _median_seconds(run: Callable[[], Any], repeat: int) -> float:
    run()  # warm-up: imports, caches, specialisation
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _native(source: str) -> Callable[[], Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    return lambda: exec(source, namespace)


def _executor_runner(executor: Any, source: str) -> Callable[[], Any]:
    run = getattr(executor, "run", None) or executor  # smolagents' executor is called directly
    return lambda: run(source)


def _median_seconds_off_main_thread(run: Callable[[], Any], repeat: int) -> float:
    """Time `run` from a helper thread, as an agent running in a thread would (LocalExecutor then uses its worker
    thread and the calling thread watches the time limit)."""
    import threading

    box: list[float] = []
    thread = threading.Thread(target=lambda: box.append(_median_seconds(run, repeat)))
    thread.start()
    thread.join()
    return box[0]


def _fixed_cost_us(contenders: dict[str, Any], repeat: int) -> None:
    counter = iter(range(10**9))
    print("\nfixed cost of one step, tiny never-seen snippet (median µs):")
    native_ns: dict[str, Any] = {}
    rows = {"native exec": lambda: exec(f"x = {next(counter)}\n", native_ns)}
    for name, executor in contenders.items():
        run = getattr(executor, "run", None) or executor
        rows[name] = (lambda go: lambda: go(f"x = {next(counter)}\n"))(run)
    for name, run in rows.items():
        print(f"  {name:<40}{_median_seconds(run, repeat * 10) * 1e6:>10.0f}")


def _smolagents_executor() -> Any | None:
    try:
        module = importlib.import_module("smolagents.local_python_executor")
    except ImportError:
        return None
    executor = module.LocalPythonExecutor(additional_authorized_imports=[])
    executor.send_tools({})
    return executor


def _sandbox_executor() -> Any | None:
    try:
        module = importlib.import_module("codeloop.executors.transports.sandbox")
    except ImportError:
        return None
    factory = getattr(module, "SandboxExecutor", None)
    return factory() if factory is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per snippet and executor")
    args = parser.parse_args()

    from codeloop.executors.local import LocalExecutor

    contenders: dict[str, Any] = {"LocalExecutor": LocalExecutor()}
    worker_executor = LocalExecutor()
    sandbox = _sandbox_executor()
    if sandbox is not None:
        contenders["SandboxExecutor"] = sandbox
    smol = _smolagents_executor()
    if smol is not None:
        contenders["smolagents LocalPythonExecutor"] = smol

    names = list(contenders)
    names.insert(1, "LocalExecutor, worker thread")
    ratios: dict[str, list[float]] = {name: [] for name in names}
    header = f"{'snippet':<22}{'native ms':>11}" + "".join(f"{name[:30]:>34}" for name in names)
    print(header)
    print("-" * len(header))
    for label, source in SNIPPETS.items():
        native = _median_seconds(_native(source), args.repeat)
        cells = []
        for name in names:
            repeat = args.repeat if "smolagents" not in name else max(3, args.repeat // 5)
            if name == "LocalExecutor, worker thread":
                seconds = _median_seconds_off_main_thread(_executor_runner(worker_executor, source), repeat)
            else:
                seconds = _median_seconds(_executor_runner(contenders[name], source), repeat)
            ratio = seconds / native
            ratios[name].append(ratio)
            cells.append(f"{seconds * 1e3:>14.2f} ms  {ratio:>8.2f}x      ")
        print(f"{label:<22}{native * 1e3:>11.2f}" + "".join(f"{cell:>34}" for cell in cells))
    print("-" * len(header))
    geo = "".join(
        f"{math.exp(statistics.fmean(math.log(r) for r in ratios[name])):>24.2f}x geo-mean  "
        for name in names
    )
    print(f"{'geometric mean':<33}{geo}")
    _fixed_cost_us(contenders, args.repeat)
    worker_executor.close()
    for executor in contenders.values():
        close = getattr(executor, "close", None) or getattr(executor, "cleanup", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
