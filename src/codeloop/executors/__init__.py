"""Executors: where a CodeAgent's code runs.

    "sandbox"  SandboxExecutor  - an isolated CPython worker (bubblewrap), tools on the host. The default.
    "local"    LocalExecutor    - in this process, compiled CPython behind a policy: a guardrail for trusted code.
    "docker"   DockerExecutor   - the same worker inside a Docker container.
    "e2b"      E2BExecutor      - the same worker inside an E2B cloud sandbox.
    "modal"    ModalExecutor    - the same worker inside a Modal sandbox.

`create_executor(kind, **kwargs)` builds one by name (or passes an executor instance through). Everything is
imported lazily: importing this package loads no executor and no SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ExecutionResult, Executor

if TYPE_CHECKING:
    from .local import LocalExecutor
    from .transports.docker import DockerExecutor
    from .transports.e2b import E2BExecutor
    from .transports.modal import ModalExecutor
    from .transports.sandbox import SandboxExecutor
    from .worker.protocol import OpaqueValue

__all__ = [
    "Executor",
    "ExecutionResult",
    "EXECUTOR_KINDS",
    "create_executor",
    "LocalExecutor",
    "SandboxExecutor",
    "DockerExecutor",
    "E2BExecutor",
    "ModalExecutor",
    "OpaqueValue",
]

_LAZY = {
    "LocalExecutor": ".local",
    "SandboxExecutor": ".transports.sandbox",
    "DockerExecutor": ".transports.docker",
    "E2BExecutor": ".transports.e2b",
    "ModalExecutor": ".transports.modal",
    "OpaqueValue": ".worker.protocol",
}

EXECUTOR_KINDS = {
    "sandbox": "SandboxExecutor",
    "local": "LocalExecutor",
    "docker": "DockerExecutor",
    "e2b": "E2BExecutor",
    "modal": "ModalExecutor",
}
"""Executor names accepted by `create_executor` (and `CodeAgent(executor=...)`, `--executor`)."""


def create_executor(kind: str | Executor, **kwargs: Any) -> Executor:
    """An executor from its name ("sandbox", "local", "docker", "e2b", "modal"), built with `kwargs`.

    An object that already is an executor is returned as it is (then `kwargs` must be empty).
    """
    if not isinstance(kind, str):
        if not isinstance(kind, Executor):
            raise TypeError(
                f"executor must be one of {', '.join(map(repr, EXECUTOR_KINDS))} or an Executor instance "
                f"(with send_tools, send_variables, run, close), got {type(kind).__name__}"
            )
        if kwargs:
            raise ValueError(f"executor_kwargs {sorted(kwargs)} cannot apply to an executor instance; pass them when creating it")
        return kind
    class_name = EXECUTOR_KINDS.get(kind.strip().lower())
    if class_name is None:
        raise ValueError(f"unknown executor {kind!r}; known: {', '.join(EXECUTOR_KINDS)}")
    factory = __getattr__(class_name)
    executor: Executor = factory(**kwargs)
    return executor


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
