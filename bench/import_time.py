"""How long `import codeloop` takes in a fresh interpreter (median of several runs), beside smolagents if installed.

.venv/bin/python bench/import_time.py
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys


def import_ms(module: str, runs: int = 7) -> float:
    """Median wall-clock milliseconds to import `module` in a new interpreter, minus a bare interpreter start."""

    def once(code: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(out.stdout.strip()) * 1000

    return statistics.median(once(f"import {module}") for _ in range(runs))


def main() -> None:
    print("import time, median of 7 fresh interpreters")
    print(f"  codeloop          {import_ms('codeloop'):7.1f} ms   (goal <= 100 ms)")
    print(f"  codeloop + agents {import_ms('codeloop.agents'):7.1f} ms")
    if importlib.util.find_spec("smolagents"):
        print(f"  smolagents        {import_ms('smolagents'):7.1f} ms")


if __name__ == "__main__":
    main()
