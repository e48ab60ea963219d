"""Batch throughput: `codeloop.batch.run_batch` over N scripted 3-step CodeAgent runs, all N at once.

    .venv/bin/python bench/batch.py [--local 100,1000] [--sandbox 100] [--ray 200] [--repeats 1]

Each configuration runs in a fresh interpreter (so its peak memory is its own): N tasks, concurrency N, each run a
fresh CodeAgent with a scripted zero-latency model, results appended to a JSONL file as in `codeloop batch`.
Printed per configuration: runs/s (N over the wall time of the whole batch, JSONL writing included), failures
(runs not ending with the answer 20), and the peak resident memory of the process (the sandbox's worker processes
are not counted in it). Model time is zero, so this measures the batch path and the executor, nothing else.

`--ray N` (needs `pip install "codeloop[ray]"`) runs the same N runs on LocalExecutor twice in one interpreter:
in this process, then with `run_batch(..., ray=True)` on a one-node Ray cluster started there (2 CPUs, 150 MB of
object store; its start is not timed, the runner actor's is). Peak RSS is then the driver's only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

SCRIPT = [
    "Thought: start.\n```python\nx = 1\nprint(x)\n```",
    "Thought: add.\n```python\nx += 1\nprint(x)\n```",
    "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
]


def one_configuration(executor: str, n: int) -> dict[str, float]:
    """Run the batch once in this process and return its figures (executor "ray": LocalExecutor on Ray)."""
    from codeloop import CodeAgent
    from codeloop.batch import run_batch
    from codeloop.testing import ScriptedModel

    on_ray = executor == "ray"
    if on_ray:
        import ray

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
            concurrency=n,
            output=Path(folder) / "results.jsonl",
            ray=on_ray,
        )
        seconds = time.perf_counter() - started
    failures = sum(1 for r in records if not r["success"] or r["output"] != 20)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"runs_per_s": n / seconds, "failures": failures, "peak_rss_mb": peak_mb, "seconds": seconds}


def main() -> None:
    """Parse the command line; run each configuration in a child interpreter and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local", default="100,1000", help="batch sizes on LocalExecutor (comma-separated)")
    parser.add_argument("--sandbox", default="100", help="batch sizes on the sandbox, cold-started workers")
    parser.add_argument(
        "--ray", default="", help="batch sizes on LocalExecutor via a local one-node Ray cluster"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration (best is printed)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_configuration(args.child[0], int(args.child[1]))))
        return
    configs = [("local", int(n)) for n in args.local.split(",") if n] + [
        ("sandbox", int(n)) for n in args.sandbox.split(",") if n
    ]
    for n in (int(n) for n in args.ray.split(",") if n):
        configs += [("local", n), ("ray", n)]  # the same work in one process and on Ray, side by side
    print("| executor | concurrent runs | runs/s | failures | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for executor, n in configs:
        results = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--child", executor, str(n)],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if out.returncode != 0:
                raise SystemExit(f"{executor} x {n} failed:\n{out.stderr[-2000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = max(results, key=lambda r: r["runs_per_s"])
        print(
            f"| {executor} | {n} | {best['runs_per_s']:.0f} | {int(best['failures'])} | {best['peak_rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
