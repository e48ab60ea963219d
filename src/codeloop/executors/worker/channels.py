"""Channels: the byte streams between the host and a worker, one implementation per kind of transport.

A `Channel` is two byte streams to a worker (its stdin and stdout), its diagnostics (stderr), and control over
its life. `ProcessChannel` is a local child process (the bubblewrap sandbox or the plain fallback);
`QueueChannel` is fed by reader threads, for SDKs that deliver a remote process's output through iterators or
callbacks (E2B, Modal); the Docker transport has its own in `transports/docker.py`. `WorkerExecutor`
(`worker/host.py`) speaks the worker protocol over any of them.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..._threads import start_thread

__all__ = [
    "Channel",
    "FdChannel",
    "ProcessChannel",
    "QueueChannel",
    "spawn_process",
    "describe_exit",
    "DIAGNOSTICS_LIMIT",
]

logger = logging.getLogger(__name__)

DIAGNOSTICS_LIMIT = 64 * 1024
"""How much of a worker's stderr is kept (the tail)."""

_EXIT_WAIT_SECONDS = 2.0


class Channel(Protocol):
    """Two byte streams to a worker and control over its life. Implemented per transport."""

    def send(self, data: bytes, timeout: float | None) -> None:
        """Write all of `data` to the worker's stdin; raise TimeoutError or `BrokenPipeError`."""
        ...

    def receive(self, timeout: float | None) -> bytes:
        """Some bytes from the worker's stdout; b"" once it has ended; TimeoutError if nothing came in time."""
        ...

    def diagnostics(self) -> str:
        """The tail of what the worker wrote to stderr (crash reports, start-up errors)."""
        ...

    def exit_reason(self) -> str | None:
        """How the worker ended ("killed by SIGSEGV", "exited with status 1"), once it has ended."""
        ...

    def close(self) -> None:
        """Kill the worker and release everything; safe to call twice and from any thread."""
        ...


# --- local processes --------------------------------------------------------------------------------------------

_spawn_queue: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]] | None = None
_spawn_lock = threading.Lock()


def _spawner_loop(jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]]) -> None:
    while True:
        job, answer = jobs.get()
        try:
            answer.put((True, job()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            answer.put((False, exc))


def spawn_process(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Start a process from a thread that lives as long as this process.

    A child asked to die with its parent (bubblewrap's --die-with-parent, PR_SET_PDEATHSIG) dies when the *thread*
    that started it ends, so a worker started from a short-lived thread (an asyncio helper thread, a thread pool)
    would be killed under the agent. The main thread and a dedicated spawner thread never end early.
    """
    global _spawn_queue
    if threading.current_thread() is threading.main_thread():
        return start()
    with _spawn_lock:
        if _spawn_queue is None:
            _spawn_queue = queue.SimpleQueue()
            start_thread(_spawner_loop, _spawn_queue, name="codeloop-spawner")
        jobs = _spawn_queue
    answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
    jobs.put((start, answer))
    ok, result = answer.get()
    if not ok:
        raise result
    return result  # type: ignore[no-any-return]


def describe_exit(returncode: int | None, signal_offset: int = 0) -> str | None:
    """Human wording for a process's exit status; `signal_offset` = 128 for wrappers that report 128+signal."""
    if returncode is None:
        return None
    number = (
        -returncode
        if returncode < 0
        else returncode - signal_offset
        if signal_offset and returncode > signal_offset
        else 0
    )
    if number > 0:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


class FdChannel:
    """The byte streams of a local worker as file descriptors: one to write to it, one to read from it (the same
    one for a socket), and its stderr, kept for diagnostics. Subclasses say how the worker ends."""

    def __init__(self, in_fd: int, out_fd: int, err_fd: int) -> None:
        self._closed = False
        self._lock = threading.Lock()
        self._in = in_fd
        self._out = out_fd
        self._err = err_fd
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        self._poll = select.poll()
        self._poll.register(self._out, select.POLLIN)
        self._poll.register(self._err, select.POLLIN)
        self._err_open = True
        self._diagnostics = bytearray()
        self._stray = bytearray()

    def send(self, data: bytes, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._in, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError) as exc:
                raise BrokenPipeError(str(exc)) from None
            writable = select.poll()
            writable.register(self._in, select.POLLOUT)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not writable.poll(None if wait is None else wait * 1000) and wait is not None:
                raise TimeoutError("the worker stopped reading its input")

    def receive(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self._poll.poll(None if wait is None else wait * 1000)
            if not events:
                raise TimeoutError("no message from the worker in time")
            for fd, _event in events:
                if fd == self._err:
                    self._read_diagnostics()
            for fd, _event in events:
                if fd == self._out:
                    try:
                        return os.read(self._out, 1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        return b""

    def _read_diagnostics(self) -> None:
        if not self._err_open:
            return
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._poll.unregister(self._err)
            self._err_open = False
            return
        for buffer in (self._diagnostics, self._stray):
            buffer += chunk
            if len(buffer) > DIAGNOSTICS_LIMIT:
                del buffer[: len(buffer) - DIAGNOSTICS_LIMIT]

    def take_stray_output(self) -> str:
        """What reached the worker's stderr since the last call (output that C code or the OS wrote directly to
        the file descriptors, bypassing sys.stdout), without waiting; the worker has already sent its result,
        so everything the step wrote is in the pipe by now."""
        while self._err_open:
            size = len(self._stray)
            self._read_diagnostics()
            if len(self._stray) == size:
                break
        text = self._stray.decode("utf-8", "replace")
        self._stray.clear()
        return text

    def diagnostics(self) -> str:
        while self._err_open:  # drain what is there without waiting
            size = len(self._diagnostics)
            self._read_diagnostics()
            if len(self._diagnostics) == size:
                break
        return self._diagnostics.decode("utf-8", "replace")


class ProcessChannel(FdChannel):
    """A worker in a local child process, spoken to over its stdin/stdout pipes; stderr kept for diagnostics.

    `pass_fds` are descriptors the child inherits under the same numbers (e.g. a zygote's control socket)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        signal_offset: int = 0,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.signal_offset = signal_offset
        self.proc = spawn_process(
            lambda: subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env or {}),
                cwd=cwd,
                start_new_session=True,  # Ctrl-C in the terminal reaches the host, which decides what to stop
                close_fds=True,
                pass_fds=tuple(pass_fds),
            )
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        super().__init__(self.proc.stdin.fileno(), self.proc.stdout.fileno(), self.proc.stderr.fileno())

    def exit_reason(self) -> str | None:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        return describe_exit(self.proc.returncode, self.signal_offset)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("sandbox worker %s did not exit after SIGKILL", self.proc.pid)
        self.diagnostics()  # keep the last words; the descriptors are closed (and their numbers reused) next
        self._err_open = False
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class QueueChannel:
    """A channel fed by background readers (for SDKs that deliver a remote process's output through callbacks or
    iterators): `feed_stdout`/`feed_stderr` push text or bytes, `end` marks the end; `writer` sends bytes."""

    def __init__(
        self,
        writer: Callable[[bytes], None],
        closer: Callable[[], None],
        exit_status: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._writer = writer
        self._closer = closer
        self._exit_status = exit_status
        self._chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._diagnostics = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
        self.end_reason: str | None = None

    def feed_stdout(self, data: str | bytes) -> None:
        """Output of the remote worker (called from a reader thread)."""
        if data:
            self._chunks.put(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data))

    def feed_stderr(self, data: str | bytes) -> None:
        """Diagnostics of the remote worker (called from a reader thread)."""
        chunk = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        with self._lock:
            self._diagnostics += chunk
            if len(self._diagnostics) > DIAGNOSTICS_LIMIT:
                del self._diagnostics[: len(self._diagnostics) - DIAGNOSTICS_LIMIT]

    def end(self, reason: str | None = None) -> None:
        """The remote process's output has ended (called from a reader thread)."""
        self.end_reason = reason
        self._chunks.put(b"")

    def pump(
        self,
        iterator: Callable[[], Any],
        split: Callable[[Any], tuple[Any, Any]],
        *,
        ends_stream: bool = True,
    ) -> threading.Thread:
        """Start a daemon thread that feeds this channel from `iterator()`; `split(item)` gives (stdout, stderr).

        When the iterator is exhausted the stream ends, unless `ends_stream` is False (a separate stderr reader).
        """

        def run() -> None:
            reason = None
            try:
                for item in iterator():
                    out, err = split(item)
                    if out:
                        self.feed_stdout(out)
                    if err:
                        self.feed_stderr(err)
            except Exception as exc:  # the SDK's stream broke: the worker counts as gone
                reason = f"{type(exc).__name__}: {exc}"
            if ends_stream:
                self.end(reason)

        thread = start_thread(run, name="codeloop-remote-reader")
        return thread

    def send(self, data: bytes, timeout: float | None) -> None:
        if self._closed:
            raise BrokenPipeError("the channel is closed")
        try:
            self._writer(data)
        except Exception as exc:
            raise BrokenPipeError(f"{type(exc).__name__}: {exc}") from None

    def receive(self, timeout: float | None) -> bytes:
        if self._ended:
            return b""
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message from the remote worker in time") from None
        if not chunk:
            self._ended = True
        return chunk

    def diagnostics(self) -> str:
        with self._lock:
            return self._diagnostics.decode("utf-8", "replace")

    def exit_reason(self) -> str | None:
        deadline = (
            time.monotonic() + _EXIT_WAIT_SECONDS
        )  # the stream can end a moment before the process does
        while True:
            try:
                status = self._exit_status()
            except Exception:
                status = None
            if status is not None:
                return describe_exit(status)
            if time.monotonic() > deadline:
                return self.end_reason
            time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._closer()
        except Exception:  # already gone remotely; nothing more to release
            logger.debug("closing a remote worker failed", exc_info=True)
