"""The run store's contract: the `Store` protocol, its record types, the schema and its version.

Every backend (SQLite in `sqlite.py`, PostgreSQL in `postgres.py`) implements `Store` over the same tables
(`schema_statements`), so a run recorded by one reads the same from the other. Large strings inside steps,
events and journal results are kept once in the content-addressed `blobs` table (`externalize`/`internalize`),
not copied wherever they appear.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..journal import Journal, JournalEntry

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATION_1_TO_2",
    "settle_abandoned",
    "BLOB_THRESHOLD",
    "RunRecord",
    "EventRecord",
    "Store",
    "StoreJournal",
    "StoreError",
    "StoreFullError",
    "RunNotFound",
    "schema_statements",
    "externalize",
    "internalize",
    "blob_digest",
    "dumps",
    "to_column",
    "text_for_column",
]

SCHEMA_VERSION = 3
"""The schema this code writes. A store stamped with a newer one is refused; an older one is migrated forward.

Version 2 added `runs.owner` (the recording process, to tell a killed run from a running one) and `runs.label`
(the eval or batch a run belongs to); version 3 `runs.heartbeat` (when the recording process last showed it was
alive, to tell a killed run from a running one on another host)."""

MIGRATION_1_TO_2 = [
    "ALTER TABLE runs ADD COLUMN owner TEXT",
    "ALTER TABLE runs ADD COLUMN label TEXT",
    "CREATE INDEX IF NOT EXISTS runs_label ON runs (label, started_at)",
]
"""Schema 1 -> 2, the same statements in SQLite and PostgreSQL."""


def migration_2_to_3(dialect: str) -> list[str]:
    """Schema 2 -> 3 in `dialect` ("sqlite" or "postgres"): the runs' heartbeat (seconds since the epoch)."""
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    return [f"ALTER TABLE runs ADD COLUMN heartbeat {real}"]


BLOB_THRESHOLD = 1024
"""Strings at least this long (characters) are stored once in `blobs` and referenced by their sha256."""

_BLOB_KEY = "__codeloop_blob__"


class StoreError(Exception):
    """The store cannot be used: corrupt or foreign file, newer schema, unreachable server. Names what and why."""


class StoreFullError(StoreError):
    """A write failed for lack of space (disk full, size limit). The run stops with state "error"."""

    stops_run = True
    """Read by the agent: a listener raising this ends the run (as an error) instead of being warned about."""


class RunNotFound(StoreError, KeyError):
    """No run with this id in the store."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else "run not found"


@dataclass
class RunRecord:
    """One run as the store keeps it (a row of `runs`); steps and events are read separately."""

    run_id: str
    agent: str = ""
    """The agent's name, or its class name when it has none."""
    agent_class: str = ""
    task: str = ""
    state: str = "running"
    """"running" while it goes on, "abandoned" once its recording process is found gone (kill -9, OOM, crash:
    resumable), else the `RunState` it ended with."""
    model_id: str = ""
    session: str | None = None
    parent_run_id: str | None = None
    """The manager's run, for a run of a managed agent."""
    started_at: float = 0.0
    ended_at: float | None = None
    step_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    output: Any = None
    """The final answer, JSON-able (a marked repr when JSON cannot hold it)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The agent's configuration, never secrets (no API keys, no headers)."""
    owner: str | None = None
    """The process recording the run (`liveness.process_identity()`): "host:pid:start"."""
    label: str | None = None
    """What the run belongs to, e.g. "eval:<id>" or "batch:<id>" for a task of `codeloop eval`/`batch`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `run` object of the export format)."""
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "agent_class": self.agent_class,
            "task": self.task,
            "state": self.state,
            "model_id": self.model_id,
            "session": self.session,
            "parent_run_id": self.parent_run_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "step_count": self.step_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "output": self.output,
            "config": self.config,
            "owner": self.owner,
            "label": self.label,
        }


@dataclass
class EventRecord:
    """One event of a run, in the order it was emitted."""

    run_id: str
    seq: int
    type: str
    """The event class name, e.g. "StepStarted"."""
    at: float
    data: dict[str, Any]


@runtime_checkable
class Store(Protocol):
    """Where runs are recorded. Every method is safe to call from many processes on one store at once.

    Writes are durable when they return. A write that fails for lack of space raises `StoreFullError`;
    other failures raise `StoreError` (the recorder warns and goes on, so a store never breaks a run).

    Optional: `record(run_id, steps: list[tuple[int, dict]], events: list[EventRecord])` writing a step's rows
    in one transaction; the recorder uses it when present (one commit a step), else `add_step` and `add_events`.
    """

    url: str
    """Where the store lives, for messages (a path or a URL without password)."""

    # --- writing a run ---
    def start_run(self, run: RunRecord) -> None:
        """Insert the run (state "running"); its id must be new."""
        ...

    def add_step(self, run_id: str, index: int, step: dict[str, Any]) -> None:
        """Record the run's `index`-th memory step (`MemoryStep.to_dict()`); re-adding an index replaces it."""
        ...

    def add_events(self, run_id: str, events: list[EventRecord]) -> None:
        """Append events (their `seq` is unique per run)."""
        ...

    def finish_run(self, run: RunRecord) -> None:
        """Update the run's row with its end: state, ended_at, usage, cost, error, output, step_count."""
        ...

    # --- reading ---
    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or a unique id prefix; raises `RunNotFound`."""
        ...

    def list_runs(
        self,
        *,
        session: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        model: str | None = None,
        since: float | None = None,
        until: float | None = None,
        top_level: bool = False,
        offset: int = 0,
        label: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally only one session's, one state's, one model's (`model_id`) or one label's.

        `since`/`until` keep runs started at or after / before those times (seconds since the epoch);
        `top_level` leaves managed agents' runs out (those with a parent); `offset` skips that many runs of the
        ordered result, for paging with `limit`. Reading settles runs whose recording process on this machine is
        gone: "running" becomes "abandoned" (as in `get_run` and `children`).
        """
        ...

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's memory steps as dicts, in order (blobs already put back)."""
        ...

    def events(self, run_id: str) -> list[EventRecord]:
        """The run's events in order (blobs already put back)."""
        ...

    def children(self, run_id: str) -> list[RunRecord]:
        """Runs whose parent is this run (managed agents' runs), oldest first."""
        ...

    def delete_run(self, run_id: str) -> int:
        """Delete the run, its steps, events, journal and child runs; the number of runs deleted."""
        ...

    # --- blobs, journal ---
    def put_blob(self, data: str) -> str:
        """Keep `data` once under its sha256 hex digest (returned); storing it again costs nothing."""
        ...

    def get_blob(self, digest: str) -> str:
        """The string stored under `digest`; raises `StoreError` when missing."""
        ...

    def journal(self, run_id: str) -> Journal:
        """The run's effect journal (see `codeloop.journal`), backed by the `journal` table.

        It also implements `codeloop.journal.Leases` over the `leases` table (take/renew/replace atomically in
        one transaction), so two processes never resume one run at once.
        """
        ...

    def schema_version(self) -> int:
        """The schema version the store is stamped with."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


def schema_statements(dialect: str) -> list[str]:
    """CREATE TABLE/INDEX statements for the current schema, for `dialect` "sqlite" or "postgres".

    JSON columns are TEXT holding JSON (portable, and what `export` emits); times are seconds since the epoch.
    """
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    big = "BIGINT" if dialect == "postgres" else "INTEGER"
    # SQLite: rows kept in the primary key's b-tree, not a second copy of (run_id, seq) in an index.
    clustered = "" if dialect == "postgres" else " WITHOUT ROWID"
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            agent_class TEXT NOT NULL,
            task TEXT NOT NULL,
            state TEXT NOT NULL,
            model_id TEXT NOT NULL,
            session TEXT,
            parent_run_id TEXT,
            started_at {real} NOT NULL,
            ended_at {real},
            step_count {big} NOT NULL DEFAULT 0,
            input_tokens {big} NOT NULL DEFAULT 0,
            output_tokens {big} NOT NULL DEFAULT 0,
            cost_usd {real},
            error TEXT,
            output TEXT,
            config TEXT NOT NULL,
            owner TEXT,
            label TEXT,
            heartbeat {real})""",
        "CREATE INDEX IF NOT EXISTS runs_session ON runs (session, started_at)",
        "CREATE INDEX IF NOT EXISTS runs_label ON runs (label, started_at)",
        "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
        "CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id)",
        f"""CREATE TABLE IF NOT EXISTS steps (
            run_id TEXT NOT NULL,
            idx {big} NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, idx)){clustered}""",
        f"""CREATE TABLE IF NOT EXISTS events (
            run_id TEXT NOT NULL,
            seq {big} NOT NULL,
            type TEXT NOT NULL,
            at {real} NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)){clustered}""",
        f"""CREATE TABLE IF NOT EXISTS journal (
            run_id TEXT NOT NULL,
            seq {big} NOT NULL,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            status TEXT NOT NULL,
            result TEXT,
            parent {big},
            PRIMARY KEY (run_id, seq)){clustered}""",
        "CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data TEXT NOT NULL)",
        # Who may resume a run (codeloop.journal.Leases): one row per leased run, expiring.
        f"""CREATE TABLE IF NOT EXISTS leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires {real} NOT NULL)""",
    ]


def settle_abandoned(
    running: list[tuple[str, str | None, float | None]],
    now: float,
    mark: Callable[[str, str, str, float | None], None],
) -> None:
    """For each `(run_id, owner, heartbeat)` of a run still "running" whose recording process is gone, call
    `mark(run_id, owner, error, cutoff)`.

    A process of this machine is checked directly; one on another host is taken for gone when the run's heartbeat
    is older than `liveness.ABANDON_AFTER_SECONDS` at `now` (the store's clock). The store's `mark` must change the
    row only while it is running under that same owner (a resume re-owns the row first, so it is never marked
    behind its back) and, when `cutoff` is given, its heartbeat is still older than `cutoff` (a late beat wins).
    """
    from .liveness import ABANDON_AFTER_SECONDS, abandoned_error, is_local, owner_is_gone, silent_error

    cutoff = now - ABANDON_AFTER_SECONDS
    for run_id, owner, heartbeat in running:
        if not owner:
            continue
        if is_local(owner):
            if owner_is_gone(owner):
                mark(run_id, owner, abandoned_error(owner), None)
        elif heartbeat is not None and heartbeat < cutoff:
            mark(run_id, owner, silent_error(owner, now - heartbeat), cutoff)


def blob_digest(data: str) -> str:
    """The sha256 hex digest a blob is stored under."""
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def externalize(value: Any, put: Callable[[str], str], threshold: int = BLOB_THRESHOLD) -> Any:
    """`value` made JSON-ready for a column, in one walk.

    Strings of `threshold`+ characters become blob references (`put` stores them once); anything JSON cannot
    hold (a set, a tuple, a dict with non-string keys, an object) becomes its repr, flagged as such
    (`{"__codeloop_repr__": ..., "type": ...}`, as `codeloop.memory.to_jsonable` does): never dropped.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(
        value, str
    ):  # a blob is TEXT: one with lone surrogates stays inline, where JSON escapes them
        return {_BLOB_KEY: put(value)} if len(value) >= threshold and _is_utf8(value) else value
    if isinstance(value, tuple):  # what json.dumps does with a tuple: an array
        value = list(value)
    if isinstance(value, list):
        return [externalize(v, put, threshold) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: externalize(v, put, threshold) for k, v in value.items()}
    from ..memory import to_jsonable

    return to_jsonable(value)


def to_column(value: Any, put: Callable[[str], str], threshold: int = BLOB_THRESHOLD) -> str:
    """`value` as the JSON text of a column: `externalize`d, compact.

    Recording must stay under a millisecond a step, so the common case takes a fast path: JSON text shorter
    than `threshold` cannot hold a string that long, and the C encoder refusing nothing means nothing needs a
    flag; only otherwise is the value walked.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_refuse)
    except (TypeError, ValueError):
        text = None
    if text is None or len(text) >= threshold:
        text = json.dumps(externalize(value, put, threshold), separators=(",", ":"), ensure_ascii=False)
    return text if text.isascii() or _is_utf8(text) else json.dumps(json.loads(text), separators=(",", ":"))


def text_for_column(text: str) -> str:
    """`text` as a TEXT column can hold it: a lone surrogate (undecodable bytes a program printed) escaped."""
    return text if text.isascii() or _is_utf8(text) else text.encode("utf-8", "backslashreplace").decode()


def _is_utf8(text: str) -> bool:
    # Lone surrogates (e.g. from bytes decoded with surrogateescape) have no UTF-8 form; JSON escapes them
    # exactly as \udcff, and they read back the same.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def internalize(value: Any, get: Callable[[str], str]) -> Any:
    """Inverse of `externalize`: blob references replaced by their strings."""
    if isinstance(value, list):
        return [internalize(v, get) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and _BLOB_KEY in value:
            return get(value[_BLOB_KEY])
        return {k: internalize(v, get) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    """Compact JSON for a column; anything JSON cannot hold becomes its flagged repr (never dropped)."""
    return to_column(value, _no_blobs, threshold=sys.maxsize)


def _no_blobs(data: str) -> str:
    raise AssertionError("unreachable: dumps() externalizes with an infinite threshold")


class StoreJournal:
    """A run's `Journal` (with leases) kept in a store: each call is one of the store's own statements.

    The store supplies `journal_entries`, `journal_append` (committed when it returns), `acquire_lease` and
    `release_lease`, each taking the run id first; SQLite and PostgreSQL share this adapter.
    """

    def __init__(self, store: Any, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def entries(self) -> list[JournalEntry]:
        """The latest entry per `seq`, in `seq` order."""
        return self.store.journal_entries(self.run_id)  # type: ignore[no-any-return]

    def append(self, entry: JournalEntry) -> None:
        """Record `entry`, superseding an earlier entry with the same `seq`; durable when this returns."""
        self.store.journal_append(self.run_id, entry)

    def acquire_lease(self, owner: str, ttl_s: float, *, replace: str | None = None) -> str | None:
        """Take or renew this run's lease for `owner` (see `codeloop.journal.Leases`), atomically across
        processes and machines; None when taken, else the current holder."""
        return self.store.acquire_lease(self.run_id, owner, ttl_s, replace)  # type: ignore[no-any-return]

    def release_lease(self, owner: str) -> None:
        """Give the lease up if `owner` holds it."""
        self.store.release_lease(self.run_id, owner)

    def __repr__(self) -> str:
        return f"StoreJournal({self.store.url!r}, run_id={self.run_id!r})"
