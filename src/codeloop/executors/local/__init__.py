"""The in-process executor: agent code compiled by CPython and run in this process behind a policy.

    executor.py  LocalExecutor: runs a step, keeps the namespace, captures output, enforces limits
    policy.py    the static checks made before a step runs (imports, forbidden names and attributes)
    guards.py    the run-time guards compiled into the step (attribute reads, calls, loops)
    modules.py   what an import hands agent code: restricted views of authorized modules
    limits.py    per-step time and memory limits that never touch the host process's own limits

A guardrail for trusted code, not a security boundary: untrusted code belongs in the sandbox
(`codeloop.executors.transports.sandbox`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import LocalExecutionResult, LocalExecutor

__all__ = ["LocalExecutor", "LocalExecutionResult"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `policy` can be imported (by other executors or tools) without loading the executor.
    if name in __all__:
        from . import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
