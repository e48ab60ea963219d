"""The run store's cost: recording overhead per step, bytes per step, many processes writing one store at once.

    .venv/bin/python bench/store.py [--steps 50] [--runs 20] [--writers 50] [--postgres postgresql://...]
    .venv/bin/python bench/store.py --start-postgres [--writers-only]

Overhead: one scripted N-step CodeAgent (local executor, zero-latency model), its runs alternating between
store=None and a fresh SQLite store in the same process, so both see the same machine load; the figures are the
median per-step differences of wall time and of the process's CPU time (user + system: the store's writes
included), the steadier one on a shared machine (goal: at most 1 ms per step). Bytes per step: the store's file size
(after a checkpoint) over the steps recorded, with and without a 20 KB observation repeated in every step
(stored once as a blob). Writers: W processes each record R runs of 3 steps into one store at once; printed are
the wall time from the common start, runs/s, and runs lost (expected minus found: must be 0). With --postgres the
overhead and the writers are measured on that server too (needs `codeloop[postgres]`); --start-postgres starts a
throwaway server for it the way the tests do (Debian's `postgresql`: initdb and pg_ctl in a temporary directory,
tests/postgres_support.py). --writers-only measures the writers alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from codeloop import CodeAgent
from codeloop.testing import ScriptedModel


def _script(steps: int, big: bool) -> list[str]:
    body = "print('z' * 20000)" if big else "x = 1\nprint(x)"
    return [f"Thought: step.\n```python\n{body}\n```"] * (steps - 1) + ["```python\nfinal_answer(1)\n```"]


def _run_once(store: Any, steps: int, big: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one run."""
    agent = CodeAgent(
        tools=[], model=ScriptedModel(_script(steps, big)), executor="local", verbosity_level=0, store=store
    )
    agent.executor  # noqa: B018 - start the executor before timing
    start, cpu = time.perf_counter(), time.process_time()
    agent.run("bench", max_steps=steps)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    agent.close()
    return elapsed, cpu


def overhead(spec: str | None, steps: int, runs: int) -> dict[str, float]:
    """Median ms/step without a store and with, and the median per-pair difference, by wall and CPU time.

    CPU time (user + system, which includes the store's writes) is the steadier figure on a shared machine.
    """
    from codeloop.store import open_store

    store = open_store(spec)
    _run_once(None, steps)  # warm up both paths
    _run_once(store, steps)
    figures: dict[str, list[float]] = {k: [] for k in ("off", "on", "diff", "cpu_off", "cpu_on", "cpu_diff")}
    for _ in range(runs):
        (a, cpu_a), (b, cpu_b) = _run_once(None, steps), _run_once(store, steps)
        for key, value in (("off", a), ("on", b), ("cpu_off", cpu_a), ("cpu_on", cpu_b)):
            figures[key].append(value / steps * 1000)
        figures["diff"].append((b - a) / steps * 1000)
        figures["cpu_diff"].append((cpu_b - cpu_a) / steps * 1000)
    return {key: statistics.median(values) for key, values in figures.items()}


def bytes_per_step(folder: Path, steps: int, runs: int, big: bool) -> float:
    from codeloop.store.sqlite import SQLiteStore

    path = folder / f"size-{big}.db"
    store = SQLiteStore(path)
    for _ in range(runs):
        _run_once(store, steps, big)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # bench only: fold the WAL into the file
    store.close()
    return path.stat().st_size / (steps * runs)


WRITER = """
import sys, time
from pathlib import Path
from codeloop import CodeAgent
from codeloop.testing import ScriptedModel
spec, go, runs, name = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
code = lambda s: f"```python\\n{s}\\n```"
agent = CodeAgent(tools=[], model=ScriptedModel([]), executor="local", verbosity_level=0, store=spec)
agent.executor
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
for i in range(runs):
    agent.model = ScriptedModel([code("x = 1"), code("x += 1"), code(f"final_answer('{name}-{i}')")])
    agent.run(f"{name} {i}")
print("ok", flush=True)
"""


def writers(spec: str, count: int, runs: int, folder: Path) -> tuple[float, int, int]:
    """(seconds from the common start to the last writer's end, runs expected, runs found)."""
    from codeloop.store import open_store

    store = open_store(spec)
    assert store is not None
    before = len(store.list_runs(limit=10**9))
    go = folder / f"go-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, spec, str(go), str(runs), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for n in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"a writer failed to start: {proc.stderr.read() if proc.stderr else ''}")
    start = time.perf_counter()
    go.touch()
    failed = 0
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0 or out.strip() != "ok":
            failed += 1
            print(f"  a writer failed: {err.strip()[-300:]}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    found = len(store.list_runs(limit=10**9)) - before
    return elapsed, count * runs, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--writer-runs", type=int, default=10)
    parser.add_argument("--postgres", help="also measure this PostgreSQL server, e.g. postgresql://u@host/db")
    parser.add_argument(
        "--start-postgres", action="store_true", help="start a throwaway PostgreSQL server (as the tests do)"
    )
    parser.add_argument("--writers-only", action="store_true", help="measure only the concurrent writers")
    args = parser.parse_args()
    server = None
    if args.start_postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_support import PostgresServer, find_bin_dir, postgres_problem

        problem = postgres_problem()
        bin_dir = find_bin_dir()
        if problem is not None or bin_dir is None:
            raise SystemExit(f"cannot start PostgreSQL: {problem}")
        server = PostgresServer(bin_dir, timeout=1800)  # initdb alone took over 120 s on a loaded machine
        server.start()
        args.postgres = server.new_database()
    try:
        _measure(args)
    finally:
        if server is not None:
            server.stop()


def _measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        targets = [("SQLite", f"sqlite:///{folder / 'overhead.db'}", f"sqlite:///{folder / 'writers.db'}")]
        if args.postgres:
            targets.append(("PostgreSQL", args.postgres, args.postgres))
        for label, spec, writer_spec in targets:
            if args.writers_only:
                elapsed, expected, found = writers(writer_spec, args.writers, args.writer_runs, folder)
                print(
                    f"{label}: {args.writers} processes x {args.writer_runs} runs of 3 steps into one store at "
                    f"once: {elapsed:.1f} s, {expected / elapsed:.1f} runs/s, {expected - found} of {expected} "
                    "runs lost"
                )
                continue
            f = overhead(spec, args.steps, args.runs)
            print(
                f"{label}: {args.steps}-step runs, median of {args.runs}: wall {f['off']:.3f} ms/step without a "
                f"store, {f['on']:.3f} recording -> overhead {f['diff']:.3f} ms/step; CPU {f['cpu_off']:.3f} "
                f"-> {f['cpu_on']:.3f}, overhead {f['cpu_diff']:.3f} ms/step (goal <= 1 ms)"
            )
            if label == "SQLite":
                small = bytes_per_step(folder, args.steps, 5, big=False)
                large = bytes_per_step(folder, args.steps, 5, big=True)
                print(
                    f"SQLite: {small:,.0f} bytes/step (trivial steps); {large:,.0f} bytes/step when every step "
                    "prints the same 20 KB (stored once)"
                )
            elapsed, expected, found = writers(writer_spec, args.writers, args.writer_runs, folder)
            print(
                f"{label}: {args.writers} processes x {args.writer_runs} runs of 3 steps into one store at once: "
                f"{elapsed:.1f} s, {expected / elapsed:.1f} runs/s, {expected - found} of {expected} runs lost"
            )


if __name__ == "__main__":
    main()
