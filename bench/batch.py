"""Batch throughput: `codeloop.batch.run_batch` over N scripted 3-step CodeAgent runs, all N at once.

    .venv/bin/python bench/batch.py [--local 100,1000] [--sandbox 100] [--pooled 100] [--ray 200] [--repeats 1]
    .venv/bin/python bench/batch.py --side-by-side 200 [--rounds 3] [--ray-nodes 2] [--pool-size 8]

Each configuration runs in a fresh interpreter (so its peak memory is its own): N tasks, concurrency N, each run a
fresh CodeAgent with a scripted zero-latency model, results appended to a JSONL file as in `codeloop batch`.
Printed per configuration: runs/s (N over the wall time of the whole batch, JSONL writing included), failures
(runs not ending with the answer 20), and the peak resident memory of the process (the sandbox's worker processes
are not counted in it). Model time is zero, so this measures the batch path and the executor, nothing else.

`--ray N` (needs `pip install "codeloop[ray]"`) runs the same N runs on LocalExecutor twice in one interpreter:
in this process, then with `run_batch(..., ray=True)` on a one-node Ray cluster started there (2 CPUs, 150 MB of
object store; its start is not timed, the runner actor's is). Peak RSS is then the driver's only.

`--pooled N` runs the batch on sandboxes taken from one `SandboxPool(--pool-size)` (each run a fresh worker forked
by a warm zygote), and first measures how long a ready sandbox takes from that pool (`new_executor()` until its
first tiny step returned, the pool refilled in between; p50/p99 over 50).

`--side-by-side N` is for a shared machine, where absolute figures move with other people's load: each of
`--rounds` rounds runs LocalExecutor, the pooled sandbox and (unless `--ray-nodes 0`) LocalExecutor on a local Ray
cluster of `--ray-nodes` nodes (`ray start --head` plus `ray start --address`, started once, not timed; N/nodes
runs at once per node, so N in flight as in one process), back to back in fresh interpreters, and prints each
one's runs/s and its ratio to LocalExecutor's in the same round, then the median ratios and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

SCRIPT = [
    "Thought: start.\n```python\nx = 1\nprint(x)\n```",
    "Thought: add.\n```python\nx += 1\nprint(x)\n```",
    "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
]


def one_configuration(executor: str, n: int, pool_size: int = 8, address: str = "") -> dict[str, float]:
    """Run the batch once in this process and return its figures (executor "ray": LocalExecutor on Ray, on the
    cluster at `address` if given; "pooled": sandboxes from a `SandboxPool(pool_size)`)."""
    from codeloop import CodeAgent
    from codeloop.batch import run_batch
    from codeloop.testing import ScriptedModel

    on_ray = executor == "ray"
    extra: dict[str, float] = {}
    concurrency = n
    pool = None
    if executor == "pooled":
        from codeloop.executors import SandboxPool

        pool = executor = SandboxPool(size=pool_size)
        pool.wait_ready(timeout=120)  # the pool's start is not timed, as the cluster's is not
        extra = _acquisitions(pool, 50)
    if on_ray and address:
        import ray

        ray.init(address=address, log_to_driver=False, configure_logging=False)
        nodes = sum(node["Alive"] for node in ray.nodes())
        concurrency = max(1, n // nodes)  # per node: the same number of runs in flight as in one process
        executor = "local"
    elif on_ray:
        import ray

        # Ray 2.60 turns token authentication on for a cluster ray.init() starts and writes ~/.ray/auth_token,
        # which then breaks every `ray start` cluster on this machine (their nodes disagree about the token).
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        source = str(
            Path(__file__).resolve().parent.parent / "src"
        )  # the runner imports this checkout's codeloop
        ray.init(
            num_cpus=2, object_store_memory=150 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": source}},
        )  # fmt: skip
        executor = "local"
    tasks = [{"id": i, "task": "Compute 20."} for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        records = run_batch(
            lambda: CodeAgent(model=ScriptedModel(list(SCRIPT)), executor=executor, verbosity_level=0),
            tasks,
            concurrency=concurrency,
            output=Path(folder) / "results.jsonl",
            ray=(address or True) if on_ray else None,
        )
        seconds = time.perf_counter() - started
    if pool is not None:
        pool.close()
    failures = sum(1 for r in records if not r["success"] or r["output"] != 20)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "runs_per_s": n / seconds,
        "failures": failures,
        "peak_rss_mb": peak_mb,
        "seconds": seconds,
        **extra,
    }


def _acquisitions(pool: Any, count: int) -> dict[str, float]:
    """p50/p99 of a ready sandbox from `pool`: `new_executor()` until its first tiny step returned (refilled)."""
    samples = []
    for _ in range(count):
        pool.wait_ready(timeout=60)
        started = time.perf_counter()
        executor = pool.new_executor()
        executor.run("1")
        samples.append(time.perf_counter() - started)
        executor.close()
    samples.sort()
    return {
        "acquire_p50_ms": 1000 * statistics.median(samples),
        "acquire_p99_ms": 1000 * samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))],
    }


def _child(executor: str, n: int, pool_size: int, address: str = "") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", executor, str(n), "--pool-size", str(pool_size),
         "--address", address],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{executor} x {n} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRayCluster:
    """A Ray cluster of `nodes` nodes on this machine (`ray start --head`, then `ray start --address`), 1 CPU each."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.temp = tempfile.mkdtemp(prefix="bray", dir="/tmp")  # short: Ray's socket paths are limited
        self.address = f"127.0.0.1:{_free_port()}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> LocalRayCluster:
        ray_cli = str(Path(sys.executable).parent / "ray")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src"),
               "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
        common = ["--num-cpus=1", "--object-store-memory=100000000", "--include-log-monitor=false", "--block"]
        port = self.address.rsplit(":", 1)[1]
        for index in range(self.nodes):
            where = (
                ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.temp}"]
                if index == 0
                else [f"--address={self.address}"]
            )
            log = Path(self.temp) / f"node{index}.log"
            self.processes.append(
                subprocess.Popen(
                    [ray_cli, "start", *where, *common],
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
            deadline = time.monotonic() + 300
            while b"will now block" not in log.read_bytes():
                if self.processes[-1].poll() is not None or time.monotonic() > deadline:
                    said = log.read_text(errors="replace")[-2000:]
                    self.__exit__()
                    raise SystemExit(f"Ray node {index} did not start:\n{said}")
                time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def side_by_side(n: int, rounds: int, ray_nodes: int, pool_size: int) -> None:
    """Print each round's runs/s per configuration and its ratio to LocalExecutor's, then the median ratios."""
    load_before = os.getloadavg()
    cluster = LocalRayCluster(ray_nodes) if ray_nodes else None
    ratios: dict[str, list[float]] = {"pooled": [], "ray": []}
    acquires: list[tuple[float, float]] = []
    names = ["local", "pooled"] + (["ray"] if cluster else [])
    print(f"{n} scripted 3-step runs per batch; pool size {pool_size}; Ray: {ray_nodes} local node(s)")
    print("| round | " + " | ".join(f"{name} runs/s" for name in names) + " | pooled / local | ray / local |")
    print("|---" * (len(names) + 3) + "|")
    try:
        if cluster:
            cluster.__enter__()
        for round_number in range(1, rounds + 1):
            figures = {name: _child(name, n, pool_size, cluster.address if cluster and name == "ray" else "")
                       for name in names}  # fmt: skip
            failures = sum(int(f["failures"]) for f in figures.values())
            if failures:
                raise SystemExit(f"round {round_number}: {failures} run(s) failed: {figures}")
            local = figures["local"]["runs_per_s"]
            for name in ("pooled", "ray"):
                if name in figures:
                    ratios[name].append(figures[name]["runs_per_s"] / local)
            acquires.append((figures["pooled"]["acquire_p50_ms"], figures["pooled"]["acquire_p99_ms"]))
            cells = " | ".join(f"{figures[name]['runs_per_s']:.0f}" for name in names)
            shown = " | ".join(
                f"{ratios[name][-1]:.2f}" if name in figures else "-" for name in ("pooled", "ray")
            )
            print(f"| {round_number} | {cells} | {shown} |", flush=True)
    finally:
        if cluster:
            cluster.__exit__()
    for name, values in ratios.items():
        if values:
            print(
                f"median {name} / local: {statistics.median(values):.2f} (rounds: {', '.join(f'{v:.2f}' for v in values)})"
            )
    p50s, p99s = zip(*acquires, strict=True)
    print(f"ready sandbox from the pool: p50 {statistics.median(p50s):.2f} ms, p99 {statistics.median(p99s):.2f} ms "
          "(median over rounds)")  # fmt: skip
    print(f"load average before: {load_before[0]:.1f}, after: {os.getloadavg()[0]:.1f} (1 min)")


def main() -> None:
    """Parse the command line; run each configuration in a child interpreter and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local", default="100,1000", help="batch sizes on LocalExecutor (comma-separated)")
    parser.add_argument("--sandbox", default="100", help="batch sizes on the sandbox, cold-started workers")
    parser.add_argument(
        "--ray", default="", help="batch sizes on LocalExecutor via a local one-node Ray cluster"
    )
    parser.add_argument("--pooled", default="", help="batch sizes on sandboxes from a SandboxPool")
    parser.add_argument("--pool-size", type=int, default=8, help="sandboxes the pool keeps ready (--pooled)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration (best is printed)")
    parser.add_argument(
        "--side-by-side", type=int, default=0, metavar="N", help="ratios to LocalExecutor, round by round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --side-by-side")
    parser.add_argument(
        "--ray-nodes", type=int, default=2, help="local Ray nodes for --side-by-side (0: no Ray)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--address", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = one_configuration(args.child[0], int(args.child[1]), args.pool_size, args.address)
        print(json.dumps(figures))
        return
    if args.side_by_side:
        side_by_side(args.side_by_side, args.rounds, args.ray_nodes, args.pool_size)
        return
    configs = (
        [("local", int(n)) for n in args.local.split(",") if n]
        + [("sandbox", int(n)) for n in args.sandbox.split(",") if n]
        + [("pooled", int(n)) for n in args.pooled.split(",") if n]
    )
    for n in (int(n) for n in args.ray.split(",") if n):
        configs += [("local", n), ("ray", n)]  # the same work in one process and on Ray, side by side
    print("| executor | concurrent runs | runs/s | failures | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for executor, n in configs:
        results = [_child(executor, n, args.pool_size) for _ in range(args.repeats)]
        best = max(results, key=lambda r: r["runs_per_s"])
        print(
            f"| {executor} | {n} | {best['runs_per_s']:.0f} | {int(best['failures'])} | {best['peak_rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
