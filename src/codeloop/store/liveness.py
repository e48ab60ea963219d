"""Which process records a run, and whether it is still alive: how a killed run stops showing as "running".

A run's row holds the identity of the process recording it (`process_identity()`: host, pid, and the process's
start time, so a pid the system handed to another process since does not count as the same one). A row still
"running" whose recording process is gone (kill -9, OOM, a crash) is settled as `ABANDONED` when runs are read;
`codeloop resume` continues it. Only processes on this machine can be checked directly. For the others, the
recording process keeps the run's heartbeat fresh (at each step and every `HEARTBEAT_SECONDS` in between, from a
background thread); a reader on any host settles a run recorded on another host whose heartbeat is older than
`ABANDON_AFTER_SECONDS`.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

__all__ = [
    "ABANDONED",
    "ABANDON_AFTER_SECONDS",
    "HEARTBEAT_SECONDS",
    "process_identity",
    "is_local",
    "owner_is_gone",
    "abandoned_error",
    "silent_error",
]

ABANDONED = "abandoned"
"""The store state of a run whose recording process died before it ended; it can be resumed."""
HEARTBEAT_SECONDS = 30.0
"""How often a recording process renews its running runs' heartbeat when no step ends meanwhile."""
ABANDON_AFTER_SECONDS = 10 * HEARTBEAT_SECONDS
"""A run recorded on another host whose heartbeat is this old is taken as abandoned: ten beats missed, which a
live process does not do short of being suspended (it then finds its run abandoned, and resume continues it)."""


@lru_cache(maxsize=8)
def _identity(pid: int) -> str:
    start = _start_time(pid)
    return f"{socket.gethostname()}:{pid}" + (f":{start}" if start else "")


def process_identity() -> str:
    """`host:pid:start` of this process (`start` is empty where the system cannot say when a process started)."""
    return _identity(os.getpid())


def _start_time(pid: int) -> str | None:
    """When process `pid` started, as `bootid-ticks` (Linux /proc); None when unknown or it does not exist."""
    found = _proc_stat(pid)
    return found[1] if found else None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, `bootid-ticks` start) of process `pid` from Linux /proc; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()[:8]
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: the fields after its last ")" are fixed,
    # starttime (field 22) being the 20th of them.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (fields[0].decode(), f"{boot}-{int(fields[19])}") if len(fields) > 19 else None


def is_local(owner: str) -> bool:
    """Whether `owner` (a `process_identity()`) names a process of this machine."""
    return owner.partition(":")[0] == socket.gethostname()


def owner_is_gone(owner: str | None) -> bool:
    """True when `owner` (a `process_identity()`, possibly followed by more `:` fields) names a process of this
    machine that no longer runs: none has its pid, or the one that has it started at another time."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, rest = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's process: it cannot be checked from here
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists (another user's): its start time still tells whether it is the same process
    current = _proc_stat(pid)
    if current is None:
        return False
    if current[0] in ("Z", "X"):
        return True  # killed, not yet reaped by its parent: it runs no more code
    recorded = rest.partition(":")[0]
    # Recorded without a start time, an existing pid has to count as the same process.
    return "-" in recorded and current[1] != recorded


def abandoned_error(owner: str) -> str:
    """The error an abandoned run is marked with."""
    host, _, rest = owner.partition(":")
    return (
        f"the process recording this run (pid {rest.partition(':')[0]} on {host}) is gone: killed, crashed or its "
        "machine restarted before the run ended; `codeloop resume RUN_ID` (or agent.resume) continues it"
    )


def silent_error(owner: str, silent_for: float) -> str:
    """The error a run recorded on another host is marked with when its heartbeat stopped."""
    host, _, rest = owner.partition(":")
    return (
        f"the process recording this run (pid {rest.partition(':')[0]} on {host}) gave no sign of life for "
        f"{silent_for:.0f} s (its heartbeat is renewed every {HEARTBEAT_SECONDS:.0f} s): killed, crashed or cut "
        "off before the run ended; `codeloop resume RUN_ID` (or agent.resume) continues it"
    )
