"""Stand-ins for the Docker, E2B and Modal SDK objects whose remote process is the real worker run locally.

They test each transport's logic (how it starts the worker, frames and demultiplexes its streams, sends stdin,
reports a dead worker, and cleans up) against the real worker protocol. They are NOT tests of Docker, E2B or
Modal themselves: those are the gated integration tests (CODELOOP_DOCKER_TESTS=1, CODELOOP_E2B_TESTS=1,
CODELOOP_MODAL_TESTS=1). The worker runs as an ordinary local subprocess here, without any isolation.
"""

from __future__ import annotations

import codecs
import os
import shlex
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from codeloop.errors import ExecutionError


class LocalWorker:
    """The command an SDK would run remotely, run here (`python3` is this interpreter)."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        argv = [sys.executable if part in ("python3", "python") else part for part in command]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


# --- Docker -----------------------------------------------------------------------------------------------------


class _SocketIO:
    """Like the object docker-py's attach_socket returns: a wrapper with the raw socket in `_sock`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def close(self) -> None:
        self._sock.close()


class FakeContainer:
    """A created container; `start` runs its command locally and multiplexes stdout/stderr like Docker does."""

    def __init__(self, client: FakeDockerClient, image: str, options: dict[str, Any]) -> None:
        self.client = client
        self.image = image
        self.options = options
        self.command = list(options["command"])
        self.labels = dict(options.get("labels") or {})
        self.worker: LocalWorker | None = None
        self.removed = False
        self.attrs: dict[str, Any] = {"State": {"Running": False, "ExitCode": None, "OOMKilled": False}}
        self._host_end: socket.socket | None = None
        self._worker_end: socket.socket | None = None

    def attach_socket(self, params: dict[str, Any]) -> _SocketIO:
        assert params == {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        self._host_end, self._worker_end = socket.socketpair()
        return _SocketIO(self._host_end)

    def start(self) -> None:
        if self.client.fail_on_start is not None:
            raise self.client.fail_on_start
        assert self._worker_end is not None, "attach before start, or early output is lost"
        self.worker = LocalWorker(self.command)
        self.attrs["State"]["Running"] = True
        lock = threading.Lock()
        worker, end = self.worker, self._worker_end

        def to_stdin() -> None:
            try:
                while chunk := end.recv(65536):
                    worker.write(chunk)
            except OSError:
                pass

        def from_stream(stream: Any, number: int) -> None:
            try:
                while chunk := stream.read1(65536):
                    with lock:
                        end.sendall(struct.pack(">BxxxL", number, len(chunk)) + chunk)
            except (OSError, ValueError):
                pass
            if number == 1:
                try:
                    end.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        for target, args in (
            (to_stdin, ()),
            (from_stream, (worker.proc.stdout, 1)),
            (from_stream, (worker.proc.stderr, 2)),
        ):
            threading.Thread(target=target, args=args, daemon=True).start()

    def reload(self) -> None:
        if self.worker is not None and self.worker.proc.poll() is not None:
            self.attrs["State"].update(Running=False, ExitCode=self.worker.proc.returncode)

    def remove(self, force: bool = False) -> None:
        assert force
        if self.worker is not None:
            self.worker.kill()
        for end in (self._worker_end,):
            if end is not None:
                end.close()
        self.removed = True


class _Containers:
    def __init__(self, client: FakeDockerClient) -> None:
        self.client = client

    def create(self, image: str, **options: Any) -> FakeContainer:
        if image not in self.client.images.present:
            raise ImageNotFound(f"No such image: {image}")
        container = FakeContainer(self.client, image, options)
        self.client.created.append(container)
        return container

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        key, _, value = (filters or {}).get("label", "=").partition("=")
        return [c for c in self.client.created if not c.removed and c.labels.get(key) == value]


class ImageNotFound(Exception):
    """Named like docker.errors.ImageNotFound, which is what the executor recognises."""


class _Images:
    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.pulled: list[str] = []

    def pull(self, image: str) -> None:
        self.pulled.append(image)
        self.present.add(image)


class FakeDockerClient:
    """Enough of `docker.DockerClient` for DockerExecutor: containers.create/list, images.pull."""

    def __init__(self, images: set[str] | None = None) -> None:
        self.created: list[FakeContainer] = []
        self.fail_on_start: BaseException | None = None
        self.containers = _Containers(self)
        self.images = _Images(
            set(images)
            if images is not None
            else {f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim", "my/python:3.12"}
        )

    def live(self) -> list[FakeContainer]:
        return [c for c in self.created if not c.removed]


# --- E2B --------------------------------------------------------------------------------------------------------


class FakeCommandHandle:
    """Like e2b's CommandHandle: iterating yields (stdout, stderr, pty) text chunks until the process ends."""

    def __init__(self, worker: LocalWorker) -> None:
        self.worker = worker
        self.pid = worker.proc.pid
        self.killed = False

    def __iter__(self) -> Iterator[tuple[str | None, str | None, None]]:
        chunks: list[tuple[str | None, str | None, None]] = []
        condition = threading.Condition()
        finished = [0]

        def read(stream: Any, index: int) -> None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while chunk := stream.read1(65536):
                text = decoder.decode(chunk)
                if text:
                    with condition:
                        chunks.append((text, None, None) if index == 0 else (None, text, None))
                        condition.notify()
            with condition:
                finished[0] += 1
                condition.notify()

        threading.Thread(target=read, args=(self.worker.proc.stdout, 0), daemon=True).start()
        threading.Thread(target=read, args=(self.worker.proc.stderr, 1), daemon=True).start()
        while True:
            with condition:
                while not chunks and finished[0] < 2:
                    condition.wait()
                if not chunks:
                    return
                item = chunks.pop(0)
            yield item

    def kill(self) -> bool:
        self.killed = True
        self.worker.kill()
        return True


class _Commands:
    def __init__(self, sandbox: FakeE2BSandbox) -> None:
        self.sandbox = sandbox

    def run(
        self, cmd: str, background: bool = False, stdin: bool = False, timeout: float | None = 60
    ) -> FakeCommandHandle:
        assert background and stdin and timeout == 0
        handle = FakeCommandHandle(LocalWorker(shlex.split(cmd)))
        self.sandbox.handles.append(handle)
        return handle

    def send_stdin(self, pid: int, data: str) -> None:
        assert isinstance(data, str)
        for handle in self.sandbox.handles:
            if handle.pid == pid:
                handle.worker.write(data.encode())
                return
        raise RuntimeError(f"no process {pid}")


class FakeE2BSandbox:
    """Enough of `e2b.Sandbox`: commands.run(background=True, stdin=True), commands.send_stdin, kill."""

    def __init__(self) -> None:
        self.handles: list[FakeCommandHandle] = []
        self.killed = False
        self.commands = _Commands(self)

    def kill(self) -> None:
        self.killed = True
        for handle in self.handles:
            handle.worker.kill()


# --- Modal ------------------------------------------------------------------------------------------------------


class _ModalStdin:
    def __init__(self, worker: LocalWorker) -> None:
        self.worker = worker
        self.pending = bytearray()

    def write(self, data: bytes | str) -> None:
        self.pending += data.encode() if isinstance(data, str) else data

    def drain(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        self.worker.write(data)


class _ModalLines:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[str]:
        for line in iter(self.stream.readline, b""):
            yield line.decode("utf-8", "replace")


class FakeModalSandbox:
    """Enough of `modal.Sandbox`: stdin.write/drain, iterable stdout/stderr lines (text), poll, terminate."""

    def __init__(self, *command: str) -> None:
        self.worker = LocalWorker(command)
        self.stdin = _ModalStdin(self.worker)
        self.stdout = _ModalLines(self.worker.proc.stdout)
        self.stderr = _ModalLines(self.worker.proc.stderr)
        self.terminated = False

    def poll(self) -> int | None:
        return self.worker.proc.poll()

    def terminate(self) -> None:
        self.terminated = True
        self.worker.kill()


# --- shared checks ----------------------------------------------------------------------------------------------


def exercise_worker(executor: Any) -> None:
    """The same checks for every transport: state, output, tools on the host, final answers, errors."""
    host_calls: list[tuple[str, int]] = []

    def lookup(name: str, *, times: int = 1) -> str:
        host_calls.append((name, os.getpid()))
        return name * times

    executor.send_tools({"lookup": lookup})
    executor.send_variables({"given": [1, 2]})
    result = executor.run("x = lookup('ab', times=2)\nprint('got', x)\nlen(x) + sum(given)")
    assert result.output == 7 and result.logs == "got abab\n"
    assert host_calls == [("ab", os.getpid())]
    assert executor.run("x.upper()").output == "ABAB"
    final = executor.run("try:\n    final_answer({'x': x})\nexcept Exception:\n    pass")
    assert final.is_final_answer and final.output == {"x": "abab"}
    with pytest.raises(ExecutionError, match="(?s)Error on line 2.*ZeroDivisionError"):
        executor.run("print('before')\n1 / 0")
    # A failing step keeps the worker (the same container or cloud sandbox) and the variables made before it.
    for failing, error in (
        ("x[99]", "IndexError"),
        ("undefined_name", "NameError"),
        ("def f(:", "SyntaxError"),
    ):
        with pytest.raises(ExecutionError, match=error) as caught:
            executor.run(failing)
        assert "fresh worker" not in str(caught.value)
    assert executor.run("x").output == "abab" and executor.restarts == 0
