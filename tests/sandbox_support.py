"""Shared helpers for the sandbox tests: is bubblewrap usable here, and a marker that says why not."""

from __future__ import annotations

import functools
import os
import sys

import pytest


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why the bubblewrap sandbox cannot run on this machine (None when it can): tried once, for real."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap (bwrap) needs Linux, this is {sys.platform}"
    from codeloop.errors import SandboxUnavailableError
    from codeloop.executors.transports.sandbox import SandboxExecutor

    try:
        with SandboxExecutor(require_isolation=True) as executor:
            executor.run("1")
    except SandboxUnavailableError as exc:
        return f"bubblewrap (bwrap) sandbox unavailable: {str(exc).splitlines()[0]}"
    return None


needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason=bwrap_problem() or "bubblewrap works")
"""Skips a test, saying why, where the bubblewrap sandbox cannot run (no bwrap, no user namespaces, not Linux)."""


def worker_processes() -> list[int]:
    """Pids of this process's descendants (to check that nothing outlives an executor)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [os.getpid()]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found
