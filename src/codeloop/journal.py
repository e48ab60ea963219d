"""The effect journal: every effect a run asks for, and its result, recorded before the loop sees it.

An agent's loop is a pure generator that asks its driver for effects (call the model, run code, call
tools). The driver appends a "started" entry before performing an effect and a "done" or "failed"
entry after, and only then hands the result to the loop. A run killed at any instant can therefore be
rebuilt by replaying the generator with the recorded results (see `codeloop.resume`).

`Journal` is the protocol stores implement (SQLite and Postgres in `codeloop.store`); `MemoryJournal`
is the in-process implementation used by tests and by agents that record nothing durably.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["JournalEntry", "Journal", "Leases", "MemoryJournal", "FileJournal", "request_key"]

STARTED = "started"
DONE = "done"
FAILED = "failed"
STATUSES = (STARTED, DONE, FAILED)


@dataclass(frozen=True)
class JournalEntry:
    """One effect of a run, at one status.

    `seq` numbers a run's effects 0, 1, 2 ... in the order they were asked for; a later entry with the
    same `seq` (its "done" or "failed") supersedes the "started" one. `key` is the sha256 of the
    request's canonical JSON, so a replay that asks for a different request at that `seq` is detected
    as a divergence. `parent` is set for a tool call made from inside code: the `seq` of that code effect.
    """

    seq: int
    kind: str
    key: str
    status: str
    result: Any = None
    parent: int | None = None


@runtime_checkable
class Journal(Protocol):
    """Where a run's effects are recorded; implemented by `MemoryJournal` and by each store."""

    run_id: str

    def entries(self) -> list[JournalEntry]:
        """The latest entry per `seq`, in `seq` order."""
        ...

    def append(self, entry: JournalEntry) -> None:
        """Record `entry`; it is durable when this returns. A later entry for a `seq` supersedes."""
        ...


@runtime_checkable
class Leases(Protocol):
    """Optional for a `Journal`: a lease on its run, so that two processes never resume one run at once.

    A journal without leases can still be resumed, but nothing stops a second process doing the same.
    """

    def acquire_lease(self, owner: str, ttl_s: float, *, replace: str | None = None) -> str | None:
        """Take or renew this run's lease for `owner` until `ttl_s` seconds from now, atomically.

        Succeeds (returns None) when nobody holds the lease, the holder's lease has expired, the holder is
        `owner`, or the holder is `replace` (a holder the caller found dead); otherwise changes nothing and
        returns the holder's owner string.
        """
        ...

    def release_lease(self, owner: str) -> None:
        """Give the lease up if `owner` holds it."""
        ...


def request_key(request: Any) -> str:
    """The sha256 hex of `request`'s canonical JSON (sorted keys, no spaces; non-JSON values by repr)."""
    # ASCII output: a lone surrogate (agent code may print one) is escaped, so the text always encodes
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class MemoryJournal:
    """A `Journal` kept in this process's memory: for tests, and for runs with no store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._latest: dict[int, JournalEntry] = {}
        self._lock = threading.Lock()
        self._lease: tuple[str, float] | None = None

    def entries(self) -> list[JournalEntry]:
        """The latest entry per `seq`, in `seq` order."""
        with self._lock:
            return [self._latest[seq] for seq in sorted(self._latest)]

    def append(self, entry: JournalEntry) -> None:
        """Record `entry` (superseding an earlier entry with the same `seq`)."""
        if entry.status not in STATUSES:
            raise ValueError(f"journal entry status must be one of {STATUSES}, got {entry.status!r}")
        with self._lock:
            self._latest[entry.seq] = entry

    def acquire_lease(self, owner: str, ttl_s: float, *, replace: str | None = None) -> str | None:
        """Take or renew the lease (see `Leases`); held in this process only."""
        with self._lock:
            holder = _grant(self._lease, owner, replace)
            if holder is None:
                self._lease = (owner, time.time() + ttl_s)
            return holder

    def release_lease(self, owner: str) -> None:
        """Give the lease up if `owner` holds it."""
        with self._lock:
            if self._lease is not None and self._lease[0] == owner:
                self._lease = None

    def __repr__(self) -> str:
        return f"MemoryJournal(run_id={self.run_id!r}, entries={len(self._latest)})"


class FileJournal:
    """A `Journal` in a JSON-lines file (`<folder>/<run_id>.jsonl`), fsynced on every append.

    Meant for development and tests, and for runs without a store: one file per run, no server. A line
    torn by a crash in the middle of a write is ignored when read (its effect then counts as not recorded).
    The lease lives beside it in `<run_id>.lease`, changed under an exclusive `flock`.
    """

    def __init__(self, folder: str | Path, run_id: str) -> None:
        if not run_id or not all(c.isalnum() or c in "-_" for c in run_id):
            raise ValueError(f"run id {run_id!r} cannot name a journal file: use letters, digits, - and _")
        self.run_id = run_id
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{run_id}.jsonl"
        self._lock = threading.Lock()

    @classmethod
    def factory(cls, folder: str | Path) -> Callable[[str], FileJournal]:
        """A `journal=` factory for agents: each run gets its own file in `folder`."""
        return lambda run_id: cls(folder, run_id)

    def entries(self) -> list[JournalEntry]:
        """The latest entry per `seq`, in `seq` order."""
        latest: dict[int, JournalEntry] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        for line in data.split(b"\n"):
            try:
                entry = JournalEntry(**json.loads(line))
            except (ValueError, TypeError):  # the torn last line of a crashed write, or an empty one
                continue
            latest[entry.seq] = entry
        return [latest[seq] for seq in sorted(latest)]

    def append(self, entry: JournalEntry) -> None:
        """Append `entry` as one line and fsync it before returning."""
        if entry.status not in STATUSES:
            raise ValueError(f"journal entry status must be one of {STATUSES}, got {entry.status!r}")
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "surrogatepass"))
                os.fsync(fd)
            finally:
                os.close(fd)

    def acquire_lease(self, owner: str, ttl_s: float, *, replace: str | None = None) -> str | None:
        """Take or renew the lease (see `Leases`), across processes on this machine."""
        with self._lease_file() as fd:
            raw = os.pread(fd, 4096, 0)
            current: tuple[str, float] | None = None
            if raw:
                try:
                    data = json.loads(raw)
                    current = (str(data["owner"]), float(data["expires"]))
                except (ValueError, KeyError, TypeError):
                    current = None  # a lease file torn by a crash holds no lease
            holder = _grant(current, owner, replace)
            if holder is None:
                payload = json.dumps({"owner": owner, "expires": time.time() + ttl_s}).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, payload, 0)
                os.fsync(fd)
            return holder

    def release_lease(self, owner: str) -> None:
        """Give the lease up if `owner` holds it."""
        with self._lease_file() as fd:
            raw = os.pread(fd, 4096, 0)
            try:
                held_by = json.loads(raw)["owner"] if raw else None
            except (ValueError, KeyError, TypeError):
                held_by = None
            if held_by == owner:
                os.ftruncate(fd, 0)
                os.fsync(fd)

    def _lease_file(self) -> _Locked:
        return _Locked(self.folder / f"{self.run_id}.lease")

    def __repr__(self) -> str:
        return f"FileJournal({str(self.path)!r})"


class _Locked:
    """An open file descriptor held under an exclusive flock for the duration of a `with` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> int:
        import fcntl  # POSIX only; imported here so that the rest of the module loads everywhere

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.fd

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing drops the flock


def _grant(current: tuple[str, float] | None, owner: str, replace: str | None) -> str | None:
    """None if `owner` may take a lease now held as `current` (owner, expiry); else the holder."""
    if current is None or current[1] <= time.time() or current[0] in (owner, replace):
        return None
    return current[0]
