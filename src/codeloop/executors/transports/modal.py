"""ModalExecutor: the sandbox worker inside a Modal sandbox, reached over the sandbox's stdio.

Only a transport around the one worker protocol: the Modal sandbox's entrypoint is `python3 -I -c BOOTSTRAP`, the
worker code arrives over stdin, and tool calls come back over stdout, so tools and managed agents stay on the host
and nothing is copied into the cloud. The Modal sandbox has its network blocked by default and is terminated when
the executor closes, when the worker is restarted after a timeout or crash, on errors and on Ctrl-C.

Needs the `modal` SDK (`pip install "codeloop[modal]"`) and a Modal token (`modal token new`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..._checks import check_limit
from ..kinds import require_sdk
from ..worker.channels import Channel, QueueChannel
from ..worker.host import standard_init
from .hosted import HostedWorkerExecutor

__all__ = ["ModalExecutor"]


class ModalExecutor(HostedWorkerExecutor):
    """Runs agent code in a persistent worker inside a Modal sandbox; tools stay on the host.

    Args:
        additional_authorized_imports: Accepted for compatibility and shown to the model.
        app_name: Modal app the sandboxes belong to (created if missing).
        image: A `modal.Image` (default: Debian slim with this Python's minor version).
        sandbox_lifetime: Seconds Modal keeps the sandbox alive (a backstop for cleanup).
        block_network: Cut the sandbox off the network (default True).
        cpu, memory_mb: Resources requested for the sandbox.
        sandbox_factory: Builds the sandbox from the worker command (default: `modal.Sandbox.create`).
        python_command: The interpreter in the image.
        timeout, max_print_outputs_length, on_output, startup_timeout, max_message_mb: as for `SandboxExecutor`.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        *,
        app_name: str = "codeloop",
        image: Any = None,
        sandbox_lifetime: int = 600,
        block_network: bool = True,
        cpu: float | None = None,
        memory_mb: int | None = 1024,
        sandbox_factory: Callable[..., Any] | None = None,
        python_command: str = "python3",
        timeout: float | None = 30.0,
        max_print_outputs_length: int = 50_000,
        on_output: Callable[[str], None] | None = None,
        startup_timeout: float = 300.0,
        max_message_mb: int = 64,
    ) -> None:
        if sandbox_factory is None:
            require_sdk("modal")
        check_limit("sandbox_lifetime", sandbox_lifetime, integer=True, optional=False)
        check_limit("cpu", cpu)
        check_limit("memory_mb", memory_mb, integer=True)
        super().__init__(
            additional_authorized_imports,
            python_command=python_command,
            timeout=timeout,
            max_print_outputs_length=max_print_outputs_length,
            on_output=on_output,
            startup_timeout=startup_timeout,
            max_message_mb=max_message_mb,
        )
        self.app_name = app_name
        self.image = image
        self.sandbox_lifetime = sandbox_lifetime
        self.block_network = block_network
        self.cpu = cpu
        self.memory_mb = memory_mb
        self._factory = sandbox_factory

    def _create_sandbox(self, *command: str) -> Any:
        if self._factory is not None:
            return self._factory(*command)
        require_sdk("modal")
        import modal

        app = modal.App.lookup(self.app_name, create_if_missing=True)
        image = self.image or modal.Image.debian_slim(
            python_version=f"{sys.version_info[0]}.{sys.version_info[1]}"
        )
        options: dict[str, Any] = {
            "app": app,
            "image": image,
            "timeout": self.sandbox_lifetime,
            "block_network": self.block_network,
        }
        if self.cpu is not None:
            options["cpu"] = self.cpu
        if self.memory_mb is not None:
            options["memory"] = self.memory_mb
        return modal.Sandbox.create(*command, **options)

    def _open_channel(self) -> Channel:
        sandbox = self._create_sandbox(*self.worker_command())

        def write(data: bytes) -> None:
            sandbox.stdin.write(data)
            sandbox.stdin.drain()

        def close() -> None:
            sandbox.terminate()

        def status() -> int | None:
            code = sandbox.poll()
            return code if isinstance(code, int) else None

        channel = QueueChannel(write, close, status)
        try:
            channel.pump(lambda: iter(sandbox.stdout), lambda line: (line, None))
            channel.pump(lambda: iter(sandbox.stderr), lambda line: (None, line), ends_stream=False)
        except BaseException:
            close()
            raise
        return channel

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        return standard_init(
            hello, cwd=None, max_memory_mb=self.memory_mb, output_limit=self.max_print_outputs_length
        )
