"""SandboxExecutor: agent code in a persistent CPython worker isolated by bubblewrap — the security boundary.

One worker process per executor, started on first use and kept across steps (variables persist), isolated with
bubblewrap (`bwrap`):

  - every namespace unshared: user, mount, PID, network (no network at all), IPC, UTS, cgroup;
  - an unprivileged uid (65534) in a new user namespace, all capabilities dropped, no further user namespaces,
    `--die-with-parent`, a new session (no terminal to inject into);
  - an empty root: read-only binds of only the interpreter, its loader and shared libraries, the standard library
    and the environment's site-packages (see `sandbox_fs`); no /bin, no shell, no /etc, no /home, no /proc,
    no /sys; a private, size-limited tmpfs as working directory and /tmp; everything else read-only;
  - a cleared environment: no API keys or other host secrets;
  - inside, before any agent code runs: rlimits (address space, CPU seconds per step, open files, processes,
    file size, no core dumps) and a seccomp filter (no fork/exec, no namespace or mount calls, no exotic sockets;
    see `codeloop.executors.worker.seccomp`).

The parent enforces a wall-clock limit per step (time inside tools not counted): past it, the worker is killed
and the model is told that the step was stopped and its variables were lost; the next step gets a fresh worker.
Tools stay on the host and are called over the worker's pipe (`codeloop.executors.worker.host.WorkerExecutor`).

/proc is deliberately absent: when the host runs as root, bubblewrap maps the sandbox's uid to the host's root
uid, and procfs lets that uid write host sysctls (e.g. kernel.core_pattern) even without capabilities.

Without bubblewrap (or without user namespaces) the executor falls back to a plain subprocess with the same
rlimits and seccomp filter but no filesystem or network isolation, and warns once; `require_isolation=True`
raises `SandboxUnavailableError` instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..._checks import check_limit
from ...errors import SandboxUnavailableError
from ..worker.bundle import BOOTSTRAP, python_is_this_interpreter
from ..worker.channels import Channel, ProcessChannel
from ..worker.host import WorkerExecutor, WorkerStartError, standard_init
from .sandbox_fs import MountPlan, host_site_dirs, plan_mounts

__all__ = ["SandboxExecutor", "isolation_problem", "DEFAULT_TIMEOUT_SECONDS"]

DEFAULT_TIMEOUT_SECONDS = 5.0
"""Default wall-clock limit of a step's own code (tool time excluded); the same as LocalExecutor's, and inside
the security corpus's 10-second bound for runaway code."""

_SANDBOX_UID = 65534
_WORKDIR = "/sandbox"
_PYTHON_FLAGS = ("-I", "-S", "-X", "utf8", "-B")
_MALLOC_ARENAS = "2"  # each glibc malloc arena reserves 64 MiB of address space: without a cap, a few threads
# would use up the address-space limit without allocating anything

_state_lock = threading.Lock()
_bwrap_problem: str | None = None
_bwrap_worked = False
_fallback_warned = False
_plans: dict[tuple[Any, ...], MountPlan] = {}


def isolation_problem(bwrap: str | None = None) -> str | None:
    """Why bubblewrap isolation is not available here (None if it looks available or has not failed yet)."""
    if _bwrap_problem is not None:
        return _bwrap_problem
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return "bubblewrap (bwrap) is not installed"
    if not os.access(path, os.X_OK):
        return f"bubblewrap (bwrap) is not installed at {path}"
    return None


def _warn_fallback(reason: str) -> None:
    global _fallback_warned
    with _state_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    warnings.warn(
        f"SandboxExecutor: isolation is reduced: {reason}. Agent code runs in a plain subprocess with resource "
        "limits and a seccomp filter, but it can read the host's files and reach the network. Install bubblewrap "
        "(e.g. `apt-get install bubblewrap`) and allow unprivileged user namespaces to get the full sandbox, or pass "
        "require_isolation=True to refuse to run without it.",
        RuntimeWarning,
        stacklevel=4,
    )


class SandboxExecutor(WorkerExecutor):
    """Runs agent code in an isolated, persistent CPython worker (bubblewrap on Linux); tools stay on the host.

    Args:
        additional_authorized_imports: Accepted for compatibility with `LocalExecutor` and shown to the model;
            inside the sandbox every installed module can be imported, because the boundary is the sandbox.
        timeout: Wall-clock seconds a step's code may run (time inside tools is not counted); None for no limit.
        max_memory_mb: Address-space limit of the worker (RLIMIT_AS).
        cpu_seconds: CPU seconds a step may use (RLIMIT_CPU, also bounds threads left running after it);
            defaults to `timeout`.
        max_print_outputs_length: Printed output kept per step; beyond it head and tail are kept, with a note.
        require_isolation: Raise `SandboxUnavailableError` instead of falling back to a plain subprocess.
        isolation: "auto" (bubblewrap if it works, else the warned fallback), "bubblewrap", or "subprocess"
            (force the reduced-isolation fallback, e.g. to compare or test it).
        on_output: Called with chunks of printed text while the code runs.
        readonly_paths: Extra host paths to bind read-only at the same place (data directories, libraries).
        tmpfs_mb: Size of the private writable tmpfs that is the working directory (and /tmp).
        max_open_files: RLIMIT_NOFILE of the worker.
        max_processes: RLIMIT_NPROC (threads count too) when the host user is not root.
        python: Interpreter to run in the sandbox (default: this one); its stdlib and libraries are bound.
        site_dirs: Site-packages directories to bind and import from (default: this environment's).
        bwrap: Path of the bubblewrap binary (default: `bwrap` on PATH).
        max_message_mb: Largest single message between the host and the worker, in MiB (a tool's result, a
            value, the variables sent); larger ones are refused with an error giving the size and this limit.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        *,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        max_memory_mb: int = 1024,
        cpu_seconds: float | None = None,
        max_print_outputs_length: int = 50_000,
        require_isolation: bool = False,
        isolation: str = "auto",
        on_output: Callable[[str], None] | None = None,
        readonly_paths: Sequence[str] = (),
        tmpfs_mb: int = 256,
        max_open_files: int = 256,
        max_processes: int = 64,
        python: str | None = None,
        site_dirs: Sequence[str] | None = None,
        bwrap: str | None = None,
        max_message_mb: int = 64,
    ) -> None:
        super().__init__(
            timeout=timeout,
            max_print_outputs_length=max_print_outputs_length,
            on_output=on_output,
            max_message_mb=max_message_mb,
        )
        if os.name != "posix":
            raise SandboxUnavailableError(
                "SandboxExecutor needs a POSIX system (Linux for the isolated sandbox); on this platform use "
                "executor='docker', 'e2b' or 'modal' for isolation, or 'local' for trusted code"
            )
        if isolation not in ("auto", "bubblewrap", "subprocess"):
            raise ValueError(f"isolation must be 'auto', 'bubblewrap' or 'subprocess', got {isolation!r}")
        if isolation == "subprocess" and require_isolation:
            raise ValueError("isolation='subprocess' contradicts require_isolation=True")
        for name, value in (("max_memory_mb", max_memory_mb), ("tmpfs_mb", tmpfs_mb),
                            ("max_open_files", max_open_files), ("max_processes", max_processes)):  # fmt: skip
            check_limit(name, value, integer=True, optional=False)
        check_limit("cpu_seconds", cpu_seconds)
        self.authorized_imports = sorted(set(additional_authorized_imports))
        self.max_memory_mb = max_memory_mb
        self.cpu_seconds = cpu_seconds if cpu_seconds is not None else timeout
        self.require_isolation = require_isolation or isolation == "bubblewrap"
        self.readonly_paths = tuple(readonly_paths)
        self.tmpfs_mb = tmpfs_mb
        self.max_open_files = max_open_files
        self.max_processes = max_processes
        self.python = os.path.realpath(python or sys.executable)
        self.site_dirs = None if site_dirs is None else tuple(site_dirs)
        self.bwrap = bwrap or shutil.which("bwrap")
        self.bundle_kind = "marshal" if python_is_this_interpreter(self.python) else "source"
        self._isolation = isolation
        self._fallback_dir: tempfile.TemporaryDirectory[str] | None = None
        if self.require_isolation:
            problem = isolation_problem(self.bwrap)
            if problem is not None:
                raise SandboxUnavailableError(_unavailable_message(problem))
        for path in self.readonly_paths:
            if not os.path.exists(path):
                raise FileNotFoundError(f"readonly_paths: {path!r} does not exist on the host")

    @property
    def isolation(self) -> str:
        """ "bubblewrap" when code runs in the isolated sandbox, "subprocess" in the reduced fallback."""
        if self._isolation == "subprocess":
            return "subprocess"
        return "subprocess" if isolation_problem(self.bwrap) is not None else "bubblewrap"

    @property
    def seccomp_active(self) -> bool:
        """Whether the current worker installed its seccomp filter (False before the worker has started)."""
        return bool(self.worker_info.get("seccomp"))

    # --- starting the worker -------------------------------------------------------------------------------------

    def _connect(self) -> Any:
        global _bwrap_problem, _bwrap_worked
        if self.isolation == "subprocess":
            if self._isolation != "subprocess":
                _warn_fallback(isolation_problem(self.bwrap) or "bubblewrap is unavailable")
            return super()._connect()
        try:
            connection = super()._connect()
        except WorkerStartError as exc:
            # Fall back only when bubblewrap has never worked in this process: a failure after it has worked is
            # transient (e.g. the host is out of processes) and must not quietly lower the isolation.
            if "bwrap:" not in str(exc) or _bwrap_worked:
                raise
            with _state_lock:
                _bwrap_problem = f"bubblewrap failed to start the sandbox ({_bwrap_line(str(exc))})"
            if self.require_isolation:
                raise SandboxUnavailableError(_unavailable_message(_bwrap_problem)) from None
            _warn_fallback(_bwrap_problem)
            return super()._connect()
        _bwrap_worked = True
        return connection

    def _plan(self) -> MountPlan:
        key = (self.python, self.site_dirs, self.readonly_paths)
        with _state_lock:
            plan = _plans.get(key)
        if plan is None:
            plan = plan_mounts(self.python, self.site_dirs, self.readonly_paths)
            with _state_lock:
                _plans[key] = plan
        return plan

    def _open_channel(self) -> Channel:
        if self.isolation == "subprocess":
            if self._fallback_dir is None:
                self._fallback_dir = tempfile.TemporaryDirectory(prefix="codeloop-sandbox-")
            workdir = self._fallback_dir.name
            env = {"HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": _MALLOC_ARENAS}
            return ProcessChannel([self.python, *_PYTHON_FLAGS, "-c", BOOTSTRAP], env=env, cwd=workdir)
        assert self.bwrap is not None
        return ProcessChannel([self.bwrap, *self._bwrap_args(), self.python, *_PYTHON_FLAGS, "-c", BOOTSTRAP],
                              env={}, signal_offset=128)  # fmt: skip

    def _bwrap_args(self) -> list[str]:
        plan = self._plan()
        size = str(self.tmpfs_mb * 2**20)
        args = [
            "--unshare-all",
            "--unshare-user",
            "--uid", str(_SANDBOX_UID),
            "--gid", str(_SANDBOX_UID),
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
            "--setenv", "HOME", _WORKDIR,
            "--setenv", "TMPDIR", "/tmp",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "USER", "sandbox",
            "--setenv", "LOGNAME", "sandbox",
            "--setenv", "MALLOC_ARENA_MAX", _MALLOC_ARENAS,
            "--hostname", "sandbox",
            # /tmp is a private tmpfs mounted before the binds, so an interpreter or virtualenv that lives under
            # the host's /tmp (a CI clone, say) is still bound inside it, read-only, on top of the tmpfs.
            "--size", size, "--perms", "1777", "--tmpfs", "/tmp",
            *plan.bwrap_args(),
            "--dev", "/dev",
            "--remount-ro", "/dev",
            "--size", size, "--perms", "0755", "--tmpfs", _WORKDIR,
            "--remount-ro", "/",
            "--chdir", _WORKDIR,
        ]  # fmt: skip
        return args

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        isolated = self.isolation == "bubblewrap"
        tmpfs = self.tmpfs_mb * 2**20
        rlimits: dict[str, list[int | None]] = {
            "RLIMIT_NOFILE": [self.max_open_files, self.max_open_files],
            "RLIMIT_FSIZE": [tmpfs, tmpfs],
        }
        if isolated:
            # Counted per user namespace, so only the sandbox's own threads count (the kernel exempts root).
            rlimits["RLIMIT_NPROC"] = [self.max_processes, self.max_processes]
        site_dirs = self._plan().site_dirs if isolated else list(self.site_dirs or host_site_dirs())
        return standard_init(
            hello,
            cwd=_WORKDIR if isolated else None,
            max_memory_mb=self.max_memory_mb,
            output_limit=self.max_print_outputs_length,
            site_dirs=site_dirs,
            rlimits=rlimits,
            die_with_parent=not isolated,
        )

    def _on_ready(self, ready: dict[str, Any]) -> None:
        if not ready.get("seccomp"):
            warnings.warn(
                "SandboxExecutor: the worker's seccomp filter is not active "
                f"({'; '.join(ready.get('problems') or []) or 'unsupported machine'}); process creation is then "
                "limited only by RLIMIT_NPROC",
                RuntimeWarning,
                stacklevel=5,
            )

    def _run_options(self) -> dict[str, Any]:
        return {"cpu_seconds": self.cpu_seconds}

    def close(self) -> None:
        """Kill the worker (and with it everything in its sandbox); remove the fallback's temporary directory."""
        super().close()
        if self._fallback_dir is not None:
            self._fallback_dir.cleanup()
            self._fallback_dir = None

    def __enter__(self) -> SandboxExecutor:
        return self


def _bwrap_line(text: str) -> str:
    for line in text.splitlines():
        if "bwrap:" in line:
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _unavailable_message(problem: str) -> str:
    return (
        f"SandboxExecutor cannot isolate code here: {problem}. Install bubblewrap (Debian/Ubuntu: `apt-get install "
        "bubblewrap`; Fedora: `dnf install bubblewrap`) and make sure unprivileged user namespaces are enabled "
        "(sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces > 0; inside Docker run with a "
        "seccomp profile that allows them). Or use require_isolation=False to accept a plain subprocess."
    )
