"""Executors: where a CodeAgent's code runs. (Minimal registry; the sandbox engineer extends it.)"""

from __future__ import annotations

from typing import Any

from .base import ExecutionResult, Executor

__all__ = ["Executor", "ExecutionResult", "create_executor", "LocalExecutor"]


def create_executor(kind: Any, **kwargs: Any) -> Any:
    """An executor from a kind name ("local") or an Executor instance passed through."""
    if not isinstance(kind, str):
        return kind
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor(**kwargs)
    raise ValueError(f"unknown executor {kind!r}; known: local")


def __getattr__(name: str) -> Any:
    if name == "LocalExecutor":
        from .local import LocalExecutor

        return LocalExecutor
    raise AttributeError(name)
