"""The executor names (`"sandbox"`, `"local"`, ...), the classes and SDKs behind them, and the checks on a choice.

One place answers "is this a valid executor choice?" for `create_executor`, for agents (checked when the agent is
built, before any model call is paid for) and for the executors themselves (a Docker, E2B or Modal executor built
directly still says which extra is missing when it is created). Importing this module loads no executor and no SDK.
"""

from __future__ import annotations

import difflib
from typing import Any

from .._extras import install_hint, is_installed
from ..errors import MissingExtraError
from .base import Executor, ExecutorFactory

__all__ = ["EXECUTOR_KINDS", "check_executor_choice", "require_sdk", "creates_executor"]

EXECUTOR_KINDS = {
    "sandbox": "SandboxExecutor",
    "local": "LocalExecutor",
    "docker": "DockerExecutor",
    "e2b": "E2BExecutor",
    "modal": "ModalExecutor",
}
"""Executor names accepted by `create_executor` (and `CodeAgent(executor=...)`, `--executor`)."""

_SDKS = {
    "docker": ("docker", "client"),
    "e2b": ("e2b", "sandbox_factory"),
    "modal": ("modal", "sandbox_factory"),
}
"""Executor name -> (the SDK module it needs, the constructor argument that supplies a ready-made stand-in)."""


def creates_executor(spec: Any) -> bool:
    """Whether an agent given `spec` creates (and so owns and closes) its executor: a name or a factory such as a
    `SandboxPool`, as opposed to an `Executor` instance, which stays its creator's."""
    return isinstance(spec, str) or _is_factory(spec)


def _is_factory(spec: Any) -> bool:
    # A plain attribute test: isinstance() against a runtime-checkable Protocol costs ~50 us, paid per agent.
    return callable(getattr(spec, "new_executor", None))


def check_executor_choice(spec: Any, kwargs: dict[str, Any]) -> str | Executor | ExecutorFactory:
    """The executor name `spec` normalized (stripped, lower case), or `spec` itself if it is an executor instance
    or an executor factory (`SandboxPool`).

    Raises, naming the mistake and the fix: `TypeError` for something that is neither a name nor an executor,
    `ValueError` for an unknown name (with the closest known one) or for `kwargs` given with an instance, and
    `MissingExtraError` when the executor's SDK is not installed (unless `kwargs` supply a stand-in for it).
    """
    if not isinstance(spec, str):
        if not _is_factory(spec) and not isinstance(spec, Executor):
            raise TypeError(
                f"executor must be one of {', '.join(map(repr, EXECUTOR_KINDS))}, a SandboxPool or an Executor "
                f"instance (with send_tools, send_variables, run, close), got {type(spec).__name__}"
            )
        if kwargs:
            what = type(spec).__name__ if _is_factory(spec) else "an executor instance"
            raise ValueError(
                f"executor_kwargs {sorted(kwargs)} cannot apply to {what}; pass them when creating it"
            )
        return spec
    kind = spec.strip().lower()
    if kind not in EXECUTOR_KINDS:
        close = difflib.get_close_matches(kind, EXECUTOR_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ValueError(
            f"unknown executor {spec!r}{hint} Valid names: {', '.join(map(repr, EXECUTOR_KINDS))}."
        )
    stand_in = _SDKS[kind][1] if kind in _SDKS else None
    if stand_in is None or kwargs.get(stand_in) is None:
        require_sdk(kind, who=f"executor={spec!r}")
    return kind


def require_sdk(kind: str, *, who: str | None = None) -> None:
    """Raise `MissingExtraError` with the `pip install` line if executor `kind` needs an SDK that is missing.

    `who` names the choice in the message (default: the executor's class name).
    """
    if kind not in _SDKS:
        return
    module = _SDKS[kind][0]
    if not is_installed(module):
        raise MissingExtraError(
            f"{who or EXECUTOR_KINDS[kind]} needs the `{module}` SDK: {install_hint(kind)}"
        )
