"""E2BExecutor: the sandbox worker inside an E2B cloud sandbox, reached over a background command's stdio.

Only a transport around the one worker protocol: the worker runs as `python3 -I -c BOOTSTRAP` in the E2B sandbox,
receives its code over stdin, and calls tools back over stdout, so tools and managed agents stay on the host and
nothing (no tool code, no requirements, no API key) is copied into the cloud sandbox. The E2B sandbox is killed
when the executor closes, when the worker is restarted after a timeout or crash, on errors and on Ctrl-C.

Needs the `e2b` SDK (`pip install "codeloop[e2b]"`) and an API key (`E2B_API_KEY` or `api_key=`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from typing import Any

from ..._checks import check_limit
from ..kinds import require_sdk
from ..worker.channels import Channel, QueueChannel
from ..worker.host import standard_init
from .hosted import HostedWorkerExecutor

__all__ = ["E2BExecutor"]


class E2BExecutor(HostedWorkerExecutor):
    """Runs agent code in a persistent worker inside an E2B sandbox; tools stay on the host.

    Args:
        additional_authorized_imports: Accepted for compatibility and shown to the model.
        template: E2B template (default: E2B's base template, which has python3).
        api_key: E2B API key (default: the `E2B_API_KEY` environment variable, read by the SDK).
        sandbox_lifetime: Seconds E2B keeps the sandbox alive (its own timeout, a backstop for cleanup).
        sandbox_factory: Builds the sandbox object (default: `e2b.Sandbox.create`); for custom set-ups.
        python_command: The interpreter in the template.
        max_memory_mb: The worker's address-space limit inside the sandbox.
        timeout, max_print_outputs_length, on_output, startup_timeout, max_message_mb: as for `SandboxExecutor`.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        *,
        template: str | None = None,
        api_key: str | None = None,
        sandbox_lifetime: int = 600,
        sandbox_factory: Callable[[], Any] | None = None,
        python_command: str = "python3",
        max_memory_mb: int | None = 1024,
        timeout: float | None = 30.0,
        max_print_outputs_length: int = 50_000,
        on_output: Callable[[str], None] | None = None,
        startup_timeout: float = 120.0,
        max_message_mb: int = 64,
    ) -> None:
        if sandbox_factory is None:
            require_sdk("e2b")
        check_limit("sandbox_lifetime", sandbox_lifetime, integer=True, optional=False)
        check_limit("max_memory_mb", max_memory_mb, integer=True)
        super().__init__(
            additional_authorized_imports,
            python_command=python_command,
            timeout=timeout,
            max_print_outputs_length=max_print_outputs_length,
            on_output=on_output,
            startup_timeout=startup_timeout,
            max_message_mb=max_message_mb,
        )
        self.template = template
        self.sandbox_lifetime = sandbox_lifetime
        self.max_memory_mb = max_memory_mb
        self._api_key = api_key
        self._factory = sandbox_factory

    def _create_sandbox(self) -> Any:
        if self._factory is not None:
            return self._factory()
        require_sdk("e2b")
        from e2b import Sandbox

        options: dict[str, Any] = {"timeout": self.sandbox_lifetime}
        if self.template is not None:
            options["template"] = self.template
        if self._api_key is not None:
            options["api_key"] = self._api_key
        create = getattr(Sandbox, "create", None)
        return create(**options) if callable(create) else Sandbox(**options)

    def _open_channel(self) -> Channel:
        sandbox = self._create_sandbox()
        try:
            command = shlex.join(self.worker_command())
            try:
                handle = sandbox.commands.run(command, background=True, stdin=True, timeout=0)
            except TypeError:  # SDKs before the `stdin` option kept stdin open for every command
                handle = sandbox.commands.run(command, background=True, timeout=0)
        except BaseException:
            _kill_quietly(sandbox)  # also on Ctrl-C: a sandbox we created must not outlive this call
            raise

        def write(data: bytes) -> None:
            # E2B's stdin takes text; the protocol is UTF-8 (a lone surrogate in a string would be replaced).
            sandbox.commands.send_stdin(handle.pid, data.decode("utf-8", "replace"))

        def close() -> None:
            try:
                handle.kill()
            finally:
                _kill_quietly(sandbox)

        channel = QueueChannel(write, close)
        channel.pump(lambda: iter(handle), lambda item: (item[0], item[1]))
        return channel

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        return standard_init(
            hello, cwd=None, max_memory_mb=self.max_memory_mb, output_limit=self.max_print_outputs_length
        )


def _kill_quietly(sandbox: Any) -> None:
    try:
        sandbox.kill()
    except Exception:  # already gone
        pass
