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
import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["JournalEntry", "Journal", "MemoryJournal", "request_key"]

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


def request_key(request: Any) -> str:
    """The sha256 hex of `request`'s canonical JSON (sorted keys, no spaces; non-JSON values by repr)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MemoryJournal:
    """A `Journal` kept in this process's memory: for tests, and for runs with no store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._latest: dict[int, JournalEntry] = {}
        self._lock = threading.Lock()

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

    def __repr__(self) -> str:
        return f"MemoryJournal(run_id={self.run_id!r}, entries={len(self._latest)})"
