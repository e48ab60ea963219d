"""DockerExecutor: the sandbox worker inside a Docker container, reached over the container's attached stdio.

Only the transport differs from `SandboxExecutor`: the same worker protocol, so tools (and managed agents) stay
on the host and are called from the container over the attach socket. The container gets no network, a
read-only root filesystem with a size-limited tmpfs, a memory and PID limit, no capabilities, `no-new-privileges`,
an unprivileged user and an empty environment; inside, the worker adds its rlimits and seccomp filter.

Needs the `docker` SDK (`pip install "codeloop[docker]"`), a reachable Docker engine, and an image with CPython
>= 3.9 on PATH as `python3` (default image: the official `python:<this minor version>-slim`). The container is
removed when the executor closes, when its worker is restarted after a timeout or crash, on errors, on Ctrl-C,
and at interpreter exit; containers carry the label `codeloop.executor` so strays can be found
(`docker ps -a --filter label=codeloop.executor`).
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..._checks import check_limit
from ..kinds import require_sdk
from ..worker.channels import Channel
from ..worker.host import standard_init
from .hosted import HostedWorkerExecutor

__all__ = ["DockerExecutor", "DockerChannel"]

_LABEL = "codeloop.executor"
_HEADER = struct.Struct(">BxxxL")
_DIAGNOSTICS_LIMIT = 64 * 1024


class DockerChannel:
    """The attach socket of a container running the worker (stdout and stderr multiplexed, as Docker sends them
    when the container has no TTY: an 8-byte header with the stream number and the frame length, then the data)."""

    def __init__(self, container: Any, attach_socket: Any) -> None:
        self.container = container
        self._socket: socket.socket = getattr(attach_socket, "_sock", attach_socket)
        self._wrapper = attach_socket
        self._socket.setblocking(False)
        self._pending = bytearray()
        self._diagnostics = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False

    def send(self, data: bytes, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                sent = self._socket.send(view)
                view = view[sent:]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise BrokenPipeError(str(exc)) from None
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            _, writable, _ = select.select([], [self._socket], [], wait)
            if not writable:
                raise TimeoutError("the container stopped reading its input")

    def receive(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            output = self._take_frames()
            if output:
                return output
            if self._ended:
                return b""
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._socket], [], [], wait)
            if not readable:
                raise TimeoutError("no message from the container in time")
            try:
                chunk = self._socket.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self._ended = True
            self._pending += chunk

    def _take_frames(self) -> bytes:
        output = bytearray()
        while len(self._pending) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._pending)
            if len(self._pending) < _HEADER.size + size:
                break
            payload = bytes(self._pending[_HEADER.size : _HEADER.size + size])
            del self._pending[: _HEADER.size + size]
            if stream == 1:
                output += payload
            elif stream == 2:
                self._diagnostics += payload
                if len(self._diagnostics) > _DIAGNOSTICS_LIMIT:
                    del self._diagnostics[: len(self._diagnostics) - _DIAGNOSTICS_LIMIT]
        return bytes(output)

    def diagnostics(self) -> str:
        return self._diagnostics.decode("utf-8", "replace")

    def exit_reason(self) -> str | None:
        deadline = time.monotonic() + 2.0  # the attach stream can end a moment before the container stops
        while True:
            try:
                self.container.reload()
                state = self.container.attrs.get("State", {})
            except Exception:
                return None
            if state.get("OOMKilled"):
                return "killed by SIGKILL (the container ran out of memory)"
            if not state.get("Running"):
                return f"exited with status {state.get('ExitCode')}"
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for closer in (getattr(self._wrapper, "close", None), self._socket.close):
            try:
                if closer is not None:
                    closer()
            except OSError:
                pass
        try:
            self.container.remove(force=True)
        except Exception:  # already gone, or the engine went away; nothing else to release
            pass


class DockerExecutor(HostedWorkerExecutor):
    """Runs agent code in a persistent worker inside a Docker container; tools stay on the host.

    Args:
        additional_authorized_imports: Accepted for compatibility and shown to the model; inside the container
            every installed module can be imported.
        image: Image with CPython >= 3.9 (`python3` on PATH); install the packages the code needs into it.
        timeout: Wall-clock seconds a step's code may run (tool time not counted); None for no limit.
        max_memory_mb: Memory limit of the container (and the worker's address-space limit).
        cpus: CPU quota of the container.
        pids_limit: Most processes/threads in the container.
        tmpfs_mb: Size of the writable tmpfs at /tmp (the working directory).
        network: Give the container a network (off by default).
        client: A `docker.DockerClient` (default: `docker.from_env()`).
        container_options: Extra keyword arguments for `client.containers.create`.
        python_command: The interpreter in the image.
        max_print_outputs_length, on_output, startup_timeout, max_message_mb: as for `SandboxExecutor`.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        *,
        image: str | None = None,
        timeout: float | None = 30.0,
        max_memory_mb: int = 1024,
        cpus: float = 1.0,
        pids_limit: int = 64,
        tmpfs_mb: int = 256,
        network: bool = False,
        client: Any = None,
        container_options: Mapping[str, Any] | None = None,
        python_command: str = "python3",
        max_print_outputs_length: int = 50_000,
        on_output: Callable[[str], None] | None = None,
        startup_timeout: float = 120.0,
        max_message_mb: int = 64,
    ) -> None:
        if client is None:
            require_sdk("docker")
        for name, value in (
            ("max_memory_mb", max_memory_mb),
            ("pids_limit", pids_limit),
            ("tmpfs_mb", tmpfs_mb),
        ):
            # Docker reads 0 or -1 as "no limit" for some of these: a typo must not remove a bound.
            check_limit(name, value, integer=True, optional=False)
        check_limit("cpus", cpus, optional=False)
        super().__init__(
            additional_authorized_imports,
            python_command=python_command,
            timeout=timeout,
            max_print_outputs_length=max_print_outputs_length,
            on_output=on_output,
            startup_timeout=startup_timeout,
            max_message_mb=max_message_mb,
        )
        self.image = image or f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
        self.max_memory_mb = max_memory_mb
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.network = network
        self.container_options = dict(container_options or {})
        self._client = client
        self.instance_label = uuid.uuid4().hex

    def _docker(self) -> Any:
        if self._client is None:
            require_sdk("docker")
            import docker

            self._client = docker.from_env()
        return self._client

    def _open_channel(self) -> Channel:
        client = self._docker()
        options: dict[str, Any] = {
            "command": self.worker_command(),
            "stdin_open": True,
            "tty": False,
            "detach": True,
            "network_disabled": not self.network,
            "mem_limit": f"{self.max_memory_mb}m",
            "memswap_limit": f"{self.max_memory_mb}m",
            "nano_cpus": int(self.cpus * 1e9),
            "pids_limit": self.pids_limit,
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"},
            "working_dir": "/tmp",
            "user": "65534:65534",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "environment": {"HOME": "/tmp"},
            "labels": {_LABEL: self.instance_label},
        }
        options.update(self.container_options)
        container = None
        try:
            try:
                container = client.containers.create(self.image, **options)
            except Exception as exc:
                if type(exc).__name__ != "ImageNotFound":
                    raise
                client.images.pull(self.image)  # what `docker run` does for an image that is not there yet
                container = client.containers.create(self.image, **options)
            attach = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            container.start()
            return DockerChannel(container, attach)
        except BaseException:
            # Also on Ctrl-C: never leave a container behind, even one created a moment before the interrupt.
            _remove_quietly(container)
            _remove_labelled(client, self.instance_label)
            raise

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        return standard_init(
            hello, cwd="/tmp", max_memory_mb=self.max_memory_mb, output_limit=self.max_print_outputs_length
        )


def _remove_quietly(container: Any) -> None:
    if container is None:
        return
    try:
        container.remove(force=True)
    except Exception:  # already gone
        pass


def _remove_labelled(client: Any, label: str) -> None:
    try:
        for container in client.containers.list(all=True, filters={"label": f"{_LABEL}={label}"}):
            _remove_quietly(container)
    except Exception:  # the engine is unreachable: nothing more can be done from here
        pass
