"""The zygote (runs inside the sandbox): a worker that never runs agent code and forks a fresh worker per lease.

`SandboxPool` keeps bubblewrap sandboxes whose main process is this zygote. Starting a sandbox costs ~30 ms of CPU
(bubblewrap, CPython, the worker's set-up); forking a ready worker from a zygote costs ~1 ms, and the fork starts
from the zygote's pristine state: no variable, imported module, monkeypatch, thread or environment change of an
earlier run exists in it, because none of them ever happened in the zygote.

Life of a zygote:
  1. says ``hello``, receives ``init`` on stdin/stdout like a worker, and does the part of the set-up every worker
     shares (working directory, site-packages, resource limits; not the seccomp filter, which would forbid fork);
     it records the writable directories' contents as they are now, then says ``ready``;
  2. serves the host's commands on a Unix socket (file descriptor `zygote_fd` in ``init``), one datagram each:
     ``fork`` carries two descriptors (the new worker's socket to the host and its stderr pipe); the zygote forks
     a worker that keeps only those two, closes everything of the zygote's own channels, and runs the ordinary
     worker protocol, except that it does not wait for ``init``: it applies ``child_init`` (given to the zygote,
     with the seccomp filter), then says ``ready``; the zygote's reply is ``pid N``.
     ``recycle G`` waits up to G seconds for the worker to exit, kills it (SIGKILL) and reaps it, empties the
     writable directories back to their initial contents, and replies ``done STATUS PROBLEMS``.
One worker exists at a time: the writable directories, PID, IPC and network namespaces are the sandbox's, and a
second worker would share them with the first. The seccomp filter of every worker forbids creating processes and
IPC objects that outlive it, so killing the worker and emptying the directories leaves nothing of its run.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

try:
    from . import guest
    from . import protocol as wire
except ImportError:  # loaded by the sandbox bootstrap as top-level modules, outside any package
    import codeloop_sandbox_protocol as wire  # type: ignore[import-not-found,no-redef]
    import codeloop_sandbox_worker as guest  # type: ignore[import-not-found,no-redef]

__all__ = ["main"]

_REAP_POLL_SECONDS = 0.001


def main(reader: BinaryIO, max_bytes: int = wire.DEFAULT_MAX_MESSAGE_MB * 2**20) -> None:
    """Set up as a zygote over stdin/stdout, then serve ``fork`` and ``recycle`` on the control socket."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    channel = guest._Channel(reader, out_fd, max_bytes)
    try:
        channel.send({**guest.hello_message(), "zygote": True})
        message = channel.receive()
    except (guest._ProtocolBroken, BrokenPipeError):
        os._exit(0)
    child_init = message.get("child_init")
    if (
        message["op"] != "init"
        or not isinstance(message.get("zygote_fd"), int)
        or not isinstance(child_init, dict)
    ):
        os._exit(2)
    worker = guest._Worker(channel)
    problems = worker.prepare(message)
    guest.limits.libc()  # ctypes loaded once here, not in every forked worker (for its seccomp filter and PDEATHSIG)
    import faulthandler
    import gc
    import resource  # noqa: F401 - imported for the forked workers (rlimits, CPU budget)

    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    # Modules only the zygote needs are taken out of each forked worker's sys.modules, so that its modules are
    # exactly a fresh worker's (agent code importing one gets it afresh).
    before = set(sys.modules)
    import socket

    own_modules = (set(sys.modules) - before) | {__name__}
    control = socket.socket(fileno=message["zygote_fd"])
    wipe = [str(d) for d in message.get("wipe") or [] if isinstance(d, str)]
    initial = {directory: _snapshot(directory) for directory in wipe}
    gc.collect()
    gc.freeze()  # forked workers then share these pages instead of copying them at their first collection
    channel.send({"op": "ready", "problems": problems, "seccomp": False})
    child = 0
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 256, 2)
        except OSError:
            break
        if not data:
            break
        command = data.decode("ascii", "replace").split()
        if command[0] == "fork" and len(fds) == 2 and child == 0:
            pid = os.fork()
            if pid == 0:
                _become_worker(fds[0], fds[1], control.fileno(), out_fd, max_bytes, own_modules, child_init)
            for fd in fds:
                os.close(fd)
            child = pid
            control.sendall(b"pid %d" % pid)
        elif command[0] == "recycle" and len(command) == 2:
            status = _reap(child, float(command[1])) if child else 0
            child = 0
            failures = sum(_empty(directory, initial[directory]) for directory in wipe)
            control.sendall(b"done %d %d" % (status, failures))
        else:
            for fd in fds:
                os.close(fd)
            control.sendall(b"refused")
    if child:
        _reap(child, 0.0)
    os._exit(0)


def _become_worker(
    sock_fd: int,
    err_fd: int,
    control_fd: int,
    zygote_out_fd: int,
    max_bytes: int,
    own_modules: set[str],
    init: dict[str, Any],
) -> None:
    """In the forked child: keep only the new worker's own channel, then be an ordinary worker. Never returns."""
    try:
        os.dup2(err_fd, 2)
        os.dup2(err_fd, 1)  # stray writes to fd 1 join the diagnostics, as in a fresh worker
        for fd in (err_fd, control_fd, zygote_out_fd, 0):
            os.close(fd)  # the zygote's stdin, stdout and control socket: unreachable from agent code
        guest.limits.libc().prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL: never outlive the zygote
        for name in own_modules:
            sys.modules.pop(name, None)
        reader = open(sock_fd, "rb", buffering=65536, closefd=False)  # noqa: SIM115 - lives as long as the process
        guest.serve_worker(reader, sock_fd, max_bytes, init)
    finally:
        os._exit(0)


def _reap(pid: int, grace: float) -> int:
    """Wait up to `grace` seconds for the worker to exit by itself, then kill it; its raw wait status."""
    deadline = time.monotonic() + grace
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        if time.monotonic() >= deadline:
            break
        time.sleep(_REAP_POLL_SECONDS)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _snapshot(directory: str) -> dict[str, Any]:
    """What a writable directory holds before any worker ran: its mode and the directories inside it (mount
    points the sandbox created, e.g. for an environment bound under /tmp), which emptying keeps."""
    tree: dict[str, Any] = {}
    try:
        info = os.lstat(directory)
        tree["."] = (info.st_mode & 0o7777, info.st_dev)
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    tree[entry.name] = _snapshot(entry.path)
    except OSError:
        pass
    return tree


def _empty(directory: str, keep: dict[str, Any]) -> int:
    """Remove everything in `directory` a worker added (never following links; never crossing into another
    mount), restore its mode; the number of entries that could not be removed."""
    failures = 0
    mode, device = keep.get(".", (None, None))
    try:
        if mode is not None:
            os.chmod(directory, mode | 0o700)  # the worker may have locked it; its owner can always undo that
        with os.scandir(directory) as entries:
            found = list(entries)
    except OSError:
        return 1
    for entry in found:
        try:
            info = entry.stat(follow_symlinks=False)
            if device is not None and info.st_dev != device:
                continue  # a mount point (a read-only bind): not the worker's
            if entry.is_dir(follow_symlinks=False):
                inner = keep.get(entry.name)
                failures += _empty(entry.path, inner if isinstance(inner, dict) else {".": (0o700, device)})
                if inner is None:
                    os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            failures += 1
    if mode is not None:
        try:
            os.chmod(directory, mode)
        except OSError:
            failures += 1
    return failures
