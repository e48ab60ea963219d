"""SandboxPool: bubblewrap sandboxes kept warm, each handing out one freshly forked worker at a time.

A cold `SandboxExecutor` costs ~30 ms of CPU and 35-150 ms of wall time before its first step (bubblewrap, CPython
and the worker's set-up). The pool keeps `size` sandboxes whose main process is a *zygote*
(`codeloop.executors.worker.zygote`): it did the set-up every worker shares, never runs agent code, and forks a
worker on request. Each sandbox holds one worker, already forked and through its handshake (its own seccomp
filter installed, rlimits set), so taking it is a few microseconds.

Workers are never reused. When an executor from the pool is closed (or its worker times out or dies), the pool's
thread tells the zygote to kill that worker and empty the sandbox's writable directories back to how they were
before any worker ran, then forks the next one from the same pristine zygote: namespace, imported modules and
their monkeypatches, environment, working directory, threads and files of a run are all gone, and the worker's
seccomp filter has kept it from making processes or IPC objects that could outlive it. A sandbox that died, or
could not be emptied, is closed and replaced, never handed out.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from typing import Any

from ..._threads import start_thread
from ...errors import SandboxUnavailableError
from ..worker.bundle import worker_bundle
from ..worker.channels import FdChannel, describe_exit
from ..worker.host import Connection, WorkerExecutor, WorkerStartError
from .sandbox import SandboxExecutor

__all__ = ["SandboxPool", "PooledSandboxExecutor"]

logger = logging.getLogger(__name__)

_CONTROL_TIMEOUT_SECONDS = 10.0
_EXIT_GRACE_SECONDS = 2.0  # how long a worker whose stream ended may take to exit before its status is read
_WAIT_FOR_RECYCLE_SECONDS = (
    0.5  # an acquire waits this long for a sandbox being emptied before starting another
)
_RETRY_AFTER_FAILURE_SECONDS = 1.0
_MAINTAINERS = 4  # threads recycling and starting sandboxes

_live_pools: weakref.WeakSet[SandboxPool] = weakref.WeakSet()


class _ZygoteStarter(SandboxExecutor):
    """A sandbox started exactly like a `SandboxExecutor`'s (same binds, limits, fallback rules), whose main
    process is the zygote; it inherits the control socket."""

    def __init__(self, options: dict[str, Any], control_fd: int) -> None:
        super().__init__(**options)
        self._pass_fds = (control_fd,)
        self._control_fd = control_fd

    def _bundle(self) -> bytes | None:
        return worker_bundle(self.bundle_kind, zygote=True)

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        own = super()._init_message(hello)
        # Every forked worker gets this same init (seccomp filter included) from the zygote: none waits for it.
        child = {**own, "max_message_bytes": self.max_message_bytes}
        return {**own, "zygote_fd": self._control_fd, "wipe": self.writable_dirs, "child_init": child}

    def _on_ready(self, ready: dict[str, Any]) -> None:
        """The zygote has no seccomp filter (it must fork); each worker it forks reports its own."""


class _ForkedTemplate(SandboxExecutor):
    """The handshake of a forked worker: it already runs the worker code and has its init from the zygote, so it
    says hello and ready without being asked."""

    def _handshake(self, connection: Connection, deadline: float) -> dict[str, Any]:
        hello = connection.receive(deadline)
        ready = connection.receive(deadline)
        if hello.get("op") != "hello" or ready.get("op") != "ready":
            raise WorkerStartError(
                f"a forked worker did not start as expected ({hello.get('op')}, {ready.get('op')})"
            )
        return {**hello, **ready}


class _ForkedChannel(FdChannel):
    """The channel to one forked worker: a socket to it and its stderr pipe. Closing it gives the sandbox back."""

    def __init__(self, sock: socket.socket, err_fd: int, zygote: _Zygote) -> None:
        super().__init__(sock.fileno(), sock.fileno(), err_fd)
        self._sock = sock
        self._zygote = zygote
        self._status: int | None = None

    def exit_reason(self) -> str | None:
        if self._status is None:
            try:
                self._status = self._zygote.recycle(_EXIT_GRACE_SECONDS)
            except (OSError, WorkerStartError):
                return None
        return describe_exit(os.waitstatus_to_exitcode(self._status))

    def healthy(self) -> bool:
        """Whether the worker is still waiting, silent, for its first message (and its zygote is alive)."""
        if not self._zygote.alive():
            return False
        readable, _, _ = select.select([self._out], [], [], 0)
        return not readable  # a ready worker says nothing until asked: data or end-of-stream means it broke

    def close(self) -> None:
        if self._release():
            self._zygote.pool._give_back(self._zygote, recycled=self._status is not None)

    def discard(self) -> None:
        """Release this side without giving the sandbox back (its owner is closing the whole sandbox)."""
        self._release()

    def _release(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self.diagnostics()
        self._err_open = False
        self._sock.close()
        os.close(self._err)
        return True


class _Zygote:
    """One pooled sandbox: its zygote process, the control socket to it, and the worker it forked last."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.control, inner = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control.settimeout(_CONTROL_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        try:
            self.starter = _ZygoteStarter(pool.options, inner.fileno())
            self.starter._connect()
        except BaseException:
            self.control.close()
            raise
        finally:
            inner.close()
        pool.stats["started"] += 1

    def alive(self) -> bool:
        connection = self.starter._connection
        proc = getattr(connection.channel, "proc", None) if connection is not None else None
        return proc is not None and proc.poll() is None

    def _command(self, data: bytes, fds: tuple[int, ...] = ()) -> list[str]:
        with self._lock:
            try:
                if fds:
                    socket.send_fds(self.control, [data], list(fds))
                else:
                    self.control.send(data)
                reply = self.control.recv(256)
            except OSError as exc:
                raise WorkerStartError(f"the pooled sandbox stopped answering ({exc})") from None
        if not reply:
            raise WorkerStartError("the pooled sandbox has ended")
        return reply.decode("ascii", "replace").split()

    def fork(self) -> _ForkedChannel:
        """A new worker, through its handshake, waiting for its first step."""
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        err_read, err_write = os.pipe()
        try:
            reply = self._command(b"fork", (worker_end.fileno(), err_write))
        except BaseException:
            host_end.close()
            os.close(err_read)
            raise
        finally:
            worker_end.close()
            os.close(err_write)
        channel = _ForkedChannel(host_end, err_read, self)
        if reply[:1] != ["pid"]:
            channel.discard()
            raise WorkerStartError(f"the pooled sandbox refused to fork a worker ({' '.join(reply)})")
        template = self.pool._template
        connection = Connection(channel, template.max_message_bytes)
        try:
            info = template._handshake(connection, time.monotonic() + template.startup_timeout)
            template._on_ready(info)
        except BaseException:
            channel.discard()  # not given back for reuse: the caller closes this whole sandbox
            raise
        channel.info = info  # type: ignore[attr-defined]
        channel.connection = connection  # type: ignore[attr-defined]
        return channel

    def recycle(self, grace: float) -> int:
        """Kill the current worker (after `grace` seconds for it to exit by itself) and empty the writable
        directories; the worker's raw wait status. Raises `WorkerStartError` if the sandbox cannot be reused."""
        reply = self._command(b"recycle %.3f" % grace)
        if reply[:1] != ["done"] or len(reply) != 3:
            raise WorkerStartError(f"the pooled sandbox could not be recycled ({' '.join(reply)})")
        if reply[2] != "0":
            raise WorkerStartError(f"{reply[2]} files left by the last run could not be removed")
        self.pool.stats["recycled"] += 1
        return int(reply[1])

    def close(self) -> None:
        self.starter.close()  # SIGKILL to bubblewrap: its PID namespace, zygote and worker with it
        self.control.close()


class SandboxPool:
    """Pre-started sandboxes for many sandboxed runs: an executor from the pool is ready in microseconds.

    Pass the pool as an agent's executor (`CodeAgent(executor=pool)`): each agent gets its own
    `PooledSandboxExecutor`, which behaves exactly like a `SandboxExecutor` with the same options (same isolation,
    limits, errors and restarts) but takes a ready worker from the pool instead of starting one, and gives the
    sandbox back when the agent is closed. A worker is never reused: the next run gets a new one, forked from a
    zygote that never ran agent code, in a sandbox whose writable directories were emptied.

    The pool keeps `size` sandboxes; when all are in use, an executor waits briefly for one being recycled, then
    starts an extra sandbox (as a plain `SandboxExecutor` would), which is closed when given back. `close()` (or
    leaving `with`) kills every sandbox; pools still open at interpreter exit are closed then.

    Args:
        size: Sandboxes kept ready (each one is a zygote process plus one idle worker, ~20 MB, mostly shared).
        **options: Any `SandboxExecutor` option (`timeout`, `max_memory_mb`, `tmpfs_mb`, `readonly_paths`,
            `require_isolation`, ...), checked now and applied to every executor of the pool.
    """

    def __init__(self, size: int = 4, **options: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"SandboxPool size must be a positive integer (sandboxes kept ready), got {size!r}"
            )
        if "additional_authorized_imports" in options:
            options.pop("additional_authorized_imports")  # shown to the model only; every import works inside
        self.size = size
        self.options = dict(options)
        self._template = _ForkedTemplate(**self.options)  # refuses bad options now, before any process starts
        self.stats: dict[str, int] = {"started": 0, "recycled": 0, "replaced": 0, "extra": 0}
        """Counters: sandboxes started, workers recycled, broken sandboxes replaced, extra sandboxes started
        because all were in use."""
        self._cond = threading.Condition()
        self._ready: deque[tuple[_Zygote, _ForkedChannel]] = deque()
        self._returned: deque[tuple[_Zygote, bool]] = deque()
        self._zygotes: set[_Zygote] = set()
        self._busy_jobs = 0
        self._closed = False
        self.last_error: BaseException | None = None
        """Why the last attempt to start or recycle a sandbox failed (None if none has)."""
        _live_pools.add(self)
        # Recycling is mostly waiting for the sandbox's processes (kill, fork, handshake): a few threads overlap it.
        self._threads = [
            start_thread(self._maintain, name="codeloop-sandbox-pool") for _ in range(min(size, _MAINTAINERS))
        ]

    # --- the public side -----------------------------------------------------------------------------------------

    def new_executor(self) -> PooledSandboxExecutor:
        """An executor for one agent: it takes a ready worker at its first step and gives it back on `close()`."""
        if self._closed:
            raise RuntimeError("This SandboxPool is closed; create a new one.")
        return PooledSandboxExecutor(self)

    @property
    def ready(self) -> int:
        """How many sandboxes hold a worker ready to be taken now."""
        with self._cond:
            return len(self._ready)

    def wait_ready(self, count: int | None = None, timeout: float = 30.0) -> bool:
        """Wait until `count` (default: `size`) sandboxes are ready; whether they are (False after `timeout`)."""
        wanted = self.size if count is None else count
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._ready) < wanted and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return len(self._ready) >= wanted

    def close(self) -> None:
        """Kill every sandbox of the pool (workers in use included: their next step fails). Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            zygotes = list(self._zygotes)
            self._zygotes.clear()
            self._ready.clear()
            self._returned.clear()
            self._cond.notify_all()
        for zygote in zygotes:
            zygote.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SandboxPool(size={self.size}, ready={len(self._ready)}, closed={self._closed})"

    # --- taking and giving back ----------------------------------------------------------------------------------

    def _acquire(self) -> _ForkedChannel:
        deadline = time.monotonic() + _WAIT_FOR_RECYCLE_SECONDS
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerStartError("The SandboxPool of this executor is closed.")
                while self._ready:
                    zygote, channel = self._ready.popleft()
                    if channel.healthy():
                        self._cond.notify_all()
                        return channel
                    self._drop(zygote, replaced=True)
                left = deadline - time.monotonic()
                if left <= 0 or not (self._returned or self._busy_jobs):
                    break
                self._cond.wait(left)
            self.stats["extra"] += 1
        zygote = _Zygote(self)  # all in use: start another, in this thread (as a cold SandboxExecutor would)
        try:
            channel = zygote.fork()
        except BaseException:
            zygote.close()
            raise
        with self._cond:
            if self._closed:
                zygote.close()
                raise WorkerStartError("The SandboxPool of this executor is closed.")
            self._zygotes.add(zygote)
        return channel

    def _give_back(self, zygote: _Zygote, *, recycled: bool) -> None:
        with self._cond:
            if self._closed or zygote not in self._zygotes:
                closing = True
            else:
                closing = False
                self._returned.append((zygote, recycled))
                self._cond.notify_all()
        if closing:
            zygote.close()

    def _drop(self, zygote: _Zygote, *, replaced: bool) -> None:
        """Forget and close a sandbox (called with the lock held); the pool's thread starts a replacement."""
        self._zygotes.discard(zygote)
        if replaced:
            self.stats["replaced"] += 1
        zygote.close()
        self._cond.notify_all()

    # --- the pool's thread ---------------------------------------------------------------------------------------

    def _maintain(self) -> None:
        """Recycle sandboxes given back, and start new ones until `size` exist; until the pool is closed."""
        while True:
            with self._cond:
                while (
                    not self._closed
                    and not self._returned
                    and len(self._zygotes) + self._busy_jobs >= self.size
                ):
                    self._cond.wait()
                if self._closed:
                    return
                job = self._returned.popleft() if self._returned else None
                self._busy_jobs += 1
            zygote = job[0] if job is not None else None
            try:
                if zygote is None:
                    zygote = _Zygote(self)
                elif not job[1]:  # type: ignore[index]
                    zygote.recycle(0.0)
                channel = zygote.fork()
            except Exception as exc:
                if self._closed:  # the sandbox was killed under this job by close()
                    return
                self.last_error = exc
                logger.warning("SandboxPool: a sandbox could not be %s: %s", "started" if job is None else
                               "recycled", exc)  # fmt: skip
                with self._cond:
                    self._busy_jobs -= 1
                    if zygote is not None:
                        self._drop(zygote, replaced=job is not None)
                    if isinstance(exc, SandboxUnavailableError) and not isinstance(exc, WorkerStartError):
                        return  # isolation is required and missing: every executor will say so itself
                if job is None:
                    time.sleep(_RETRY_AFTER_FAILURE_SECONDS)  # e.g. out of processes: do not spin
                continue
            with self._cond:
                self._busy_jobs -= 1
                if self._closed:
                    keep = False
                elif job is None:
                    self._zygotes.add(zygote)
                    keep = True
                else:
                    # An extra sandbox (started because all were in use) is kept only while fewer than `size` are.
                    keep = zygote in self._zygotes and len(self._zygotes) <= self.size
                    if not keep:
                        self._zygotes.discard(zygote)
                if keep:
                    self._ready.append((zygote, channel))
                    self._cond.notify_all()
            if not keep:
                channel.discard()
                zygote.close()


_SHARED_SETTINGS = (
    "authorized_imports", "max_memory_mb", "cpu_seconds", "require_isolation", "readonly_paths", "tmpfs_mb",
    "max_open_files", "max_processes", "python", "site_dirs", "bwrap", "bundle_kind", "_isolation",
)  # fmt: skip


class PooledSandboxExecutor(SandboxExecutor):
    """A `SandboxExecutor` whose worker comes ready from a `SandboxPool` (see there); made by `pool.new_executor()`.

    Everything else is a `SandboxExecutor`'s: tools stay on the host, variables persist across steps, a timeout or
    a dying worker restarts it (with a new worker from the pool), `close()` ends it and gives the sandbox back.
    """

    def __init__(self, pool: SandboxPool) -> None:
        template = pool._template
        # The pool's options were checked when it was made; SandboxExecutor.__init__ would check them again and
        # resolve paths (~2 ms), so the shared settings are copied and only the per-executor state is made new.
        WorkerExecutor.__init__(
            self,
            timeout=template.timeout,
            max_print_outputs_length=template.max_print_outputs_length,
            on_output=template.on_output,
            max_message_mb=template.max_message_bytes // 2**20,
            startup_timeout=template.startup_timeout,
        )
        for name in _SHARED_SETTINGS:
            setattr(self, name, getattr(template, name))
        self._fallback_dir = None
        self._pass_fds = ()
        self.pool = pool
        self._info: dict[str, Any] = {}

    def _open_connection(self) -> Connection:
        channel = self.pool._acquire()
        self._info = channel.info  # type: ignore[attr-defined]
        connection: Connection = channel.connection  # type: ignore[attr-defined]
        return connection

    def _handshake(self, connection: Connection, deadline: float) -> dict[str, Any]:
        return self._info

    def __enter__(self) -> PooledSandboxExecutor:
        return self


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_live_pools):
        pool.close()
