"""Executors: where a CodeAgent's code runs.

    "sandbox"  SandboxExecutor  - an isolated CPython worker (bubblewrap), tools on the host. The default.
               SandboxPool      - sandboxes kept warm for many runs: `CodeAgent(executor=SandboxPool(8))`.
    "local"    LocalExecutor    - in this process, compiled CPython behind a policy: a guardrail for trusted code.
    "docker"   DockerExecutor   - the same worker inside a Docker container.
    "e2b"      E2BExecutor      - the same worker inside an E2B cloud sandbox.
    "modal"    ModalExecutor    - the same worker inside a Modal sandbox.

Each lists and reads the files its code wrote (`list_files`, `files_changed`, `read_file`, `copy_file`: see
`codeloop.executors.files`). `create_executor(kind, **kwargs)` builds one by name (or passes an executor instance
through). Everything is imported lazily: importing this package loads no executor and no SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ExecutionResult, Executor, ExecutorFactory
from .kinds import EXECUTOR_KINDS, check_executor_choice, creates_executor

if TYPE_CHECKING:
    from .files import FileChanges, FileListing, FileTooLargeError, WorkdirFile
    from .local import LocalExecutor
    from .transports.docker import DockerExecutor
    from .transports.e2b import E2BExecutor
    from .transports.modal import ModalExecutor
    from .transports.sandbox import SandboxExecutor
    from .transports.sandbox_pool import PooledSandboxExecutor, SandboxPool
    from .worker.protocol import OpaqueValue

__all__ = [
    "Executor",
    "ExecutionResult",
    "EXECUTOR_KINDS",
    "create_executor",
    "LocalExecutor",
    "SandboxExecutor",
    "SandboxPool",
    "PooledSandboxExecutor",
    "ExecutorFactory",
    "DockerExecutor",
    "E2BExecutor",
    "ModalExecutor",
    "OpaqueValue",
    "WorkdirFile",
    "FileListing",
    "FileChanges",
    "FileTooLargeError",
]

_LAZY = {
    "LocalExecutor": ".local",
    "SandboxExecutor": ".transports.sandbox",
    "SandboxPool": ".transports.sandbox_pool",
    "PooledSandboxExecutor": ".transports.sandbox_pool",
    "DockerExecutor": ".transports.docker",
    "E2BExecutor": ".transports.e2b",
    "ModalExecutor": ".transports.modal",
    "OpaqueValue": ".worker.protocol",
    "WorkdirFile": ".files",
    "FileListing": ".files",
    "FileChanges": ".files",
    "FileTooLargeError": ".files",
}


def create_executor(kind: str | Executor | ExecutorFactory, **kwargs: Any) -> Executor:
    """An executor from its name ("sandbox", "local", "docker", "e2b", "modal"), built with `kwargs`.

    An object that already is an executor is returned as it is, a factory (`SandboxPool`) gives a new executor
    (then `kwargs` must be empty). An unknown name is refused with the closest known one, a missing SDK with the
    `pip install` line that adds it.
    """
    choice = check_executor_choice(kind, kwargs)
    if creates_executor(choice) and not isinstance(choice, str):
        return choice.new_executor()  # type: ignore[union-attr]
    if not isinstance(choice, str):
        return choice  # type: ignore[return-value]
    factory = __getattr__(EXECUTOR_KINDS[choice])
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
