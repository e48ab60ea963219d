"""`HostedWorkerExecutor`: the common base of the executors whose worker runs in a container or a cloud sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..worker.bundle import BOOTSTRAP
from ..worker.host import WorkerExecutor

__all__ = ["HostedWorkerExecutor"]

_Hosted = TypeVar("_Hosted", bound="HostedWorkerExecutor")


class HostedWorkerExecutor(WorkerExecutor):
    """A `WorkerExecutor` whose worker is started as `python_command -I -c BOOTSTRAP` inside a container or a
    cloud sandbox (Docker, E2B, Modal); subclasses start it there and wire its stdio into a `Channel`.

    Args:
        additional_authorized_imports: Accepted for compatibility and shown to the model; inside, every installed
            module can be imported, because the boundary is the container or sandbox.
        python_command: The interpreter in the image or template.
        timeout, max_print_outputs_length, on_output, startup_timeout, max_message_mb: as for `WorkerExecutor`.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str],
        *,
        python_command: str,
        timeout: float | None,
        max_print_outputs_length: int,
        on_output: Callable[[str], None] | None,
        startup_timeout: float,
        max_message_mb: int,
    ) -> None:
        super().__init__(
            timeout=timeout,
            max_print_outputs_length=max_print_outputs_length,
            on_output=on_output,
            max_message_mb=max_message_mb,
            startup_timeout=startup_timeout,
        )
        self.authorized_imports = sorted(set(additional_authorized_imports))
        self.python_command = python_command

    def worker_command(self) -> list[str]:
        """The command line that starts the worker: it reads the rest of its code from stdin."""
        return [self.python_command, "-I", "-c", BOOTSTRAP]

    def _run_options(self) -> dict[str, Any]:
        # These executors have no separate CPU setting: the worker caps a step's CPU time at its wall-clock limit.
        return {"cpu_seconds": self.timeout}

    def __enter__(self: _Hosted) -> _Hosted:
        return self
