"""The embedded run store: one SQLite file in WAL mode, safe for many processes writing at once.

Every write is one short `BEGIN IMMEDIATE` transaction (writers queue on SQLite's lock for up to `timeout`
seconds instead of failing), so concurrent runs interleave without losing rows. A file that is not a codeloop
store, is corrupt, or was written by a newer codeloop is refused with a `StoreError` naming the file; nothing
is ever reset or overwritten to "repair" it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .base import (
    MIGRATION_1_TO_2,
    SCHEMA_VERSION,
    EventRecord,
    RunNotFound,
    RunRecord,
    StoreError,
    StoreFullError,
    StoreJournal,
    blob_digest,
    dumps,
    internalize,
    migration_2_to_3,
    schema_statements,
    settle_abandoned,
    text_for_column,
    to_column,
)

if TYPE_CHECKING:
    from ..journal import Journal, JournalEntry

__all__ = ["SQLiteStore", "MIGRATIONS"]

_HEADER = b"SQLite format 3\x00"
_APPLICATION = "codeloop-runs"
_T = TypeVar("_T")
# SQLite result codes (sqlite3 exposes them only from Python 3.11, untyped).
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26
_SQLITE_IOERR_WRITE = 10 | (3 << 8)

MIGRATIONS: dict[int, list[str]] = {1: MIGRATION_1_TO_2, 2: migration_2_to_3("sqlite")}
"""Statements that take a store from schema version N to N+1, keyed by N (applied in order, in one transaction)."""

_RUN_COLUMNS = (
    "run_id, agent, agent_class, task, state, model_id, session, parent_run_id, started_at, ended_at, "
    "step_count, input_tokens, output_tokens, cost_usd, error, output, config, owner, label"
)


class SQLiteStore:
    """A run store in one SQLite file (created with its folder when missing).

    `max_page_count` caps the file's size in pages (SQLite's pragma): a write past it fails as a full disk would.
    `synchronous="normal"` (WAL): a killed process (kill -9, OOM) loses nothing committed, and a power cut can
    lose only the last commits, never the file's consistency. `"full"` syncs every commit to the disk, so a
    power cut loses nothing either — at the price of an fsync per write (about 7 ms each on the dev machine).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 60.0,
        max_page_count: int | None = None,
        synchronous: str = "normal",
    ) -> None:
        self.path = Path(path).expanduser()
        self.url = str(self.path)
        self._lock = threading.RLock()
        _check_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store's folder {self.path.parent}: {exc}") from exc
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"the run store {self.path} cannot use WAL mode (got {mode!r})")
            if synchronous not in ("normal", "full"):
                raise ValueError(f"synchronous={synchronous!r}: use 'normal' or 'full'")
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            if max_page_count is not None:
                self._db.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
            self._prepare_schema()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable codeloop run store: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # --- schema ---------------------------------------------------------------------------------------------

    def _prepare_schema(self) -> None:
        with self._transaction() as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in schema_statements("sqlite"):
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("application", _APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
                )
                return
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
            if meta.get("application") != _APPLICATION:
                raise StoreError(
                    f"{self.path} is an SQLite database but not a codeloop run store (its tables: "
                    f"{', '.join(sorted(tables))}); pass another path with store=/--store"
                )
            version = int(meta.get("schema_version", "0"))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {self.path} has schema version {version}, written by a newer codeloop; "
                    f"this codeloop reads schema version {SCHEMA_VERSION}: upgrade codeloop"
                )
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))

    def schema_version(self) -> int:
        """The schema version the store is stamped with."""
        row = self._read(
            lambda db: db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        )
        return int(row[0])

    # --- plumbing -------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise _translate(exc, self.path) from exc

    def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    def _put(self, db: sqlite3.Connection) -> Callable[[str], str]:
        def put(data: str) -> str:
            digest = blob_digest(data)
            db.execute("INSERT OR IGNORE INTO blobs (digest, data) VALUES (?, ?)", (digest, data))
            return digest

        return put

    def _get(self, digest: str) -> str:
        row = self._db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise StoreError(f"the run store {self.path} lacks blob {digest} (the file was altered)")
        return str(row[0])

    def _load(self, text: str | None) -> Any:
        return None if text is None else internalize(json.loads(text), self._get)

    # --- writing a run ----------------------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        """Insert the run (state "running"); a run that is resumed starts again under its id and is running again."""
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 19)}) ON CONFLICT (run_id) DO UPDATE "
                "SET state = excluded.state, ended_at = NULL, error = NULL, owner = excluded.owner, "
                "label = COALESCE(excluded.label, runs.label)",
                _run_row(run),
            )
            db.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (time.time(), run.run_id))

    def add_step(self, run_id: str, index: int, step: dict[str, Any]) -> None:
        """Record one memory step; re-adding an index replaces it."""
        self.record(run_id, [(index, step)], [])

    def add_events(self, run_id: str, events: list[EventRecord]) -> None:
        """Append events."""
        self.record(run_id, [], events)

    def record(self, run_id: str, steps: list[tuple[int, dict[str, Any]]], events: list[EventRecord]) -> None:
        """Steps and events in one transaction (one disk sync per step instead of one per row)."""
        with self._transaction() as db:
            put = self._put(db)
            db.executemany(
                "INSERT OR REPLACE INTO steps (run_id, idx, kind, data) VALUES (?, ?, ?, ?)",
                [(run_id, i, s.get("type", ""), to_column(s, put)) for i, s in steps],
            )
            db.executemany(
                "INSERT INTO events (run_id, seq, type, at, data) VALUES (?, ?, ?, ?, ?)",
                [(run_id, e.seq, e.type, e.at, to_column(e.data, put)) for e in events],
            )
            # A step written is a sign of life (see `heartbeat`), in the same commit.
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ? AND state = 'running'", (time.time(), run_id)
            )

    def heartbeat(self, run_ids: list[str]) -> None:
        """Mark these runs' recording process as alive now (see `liveness.HEARTBEAT_SECONDS`)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ? AND state = 'running'",
                [(time.time(), run_id) for run_id in run_ids],
            )

    def finish_run(self, run: RunRecord) -> None:
        """Write the run's end into its row."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, ended_at = ?, step_count = ?, input_tokens = ?, output_tokens = ?, "
                "cost_usd = ?, error = ?, output = ? WHERE run_id = ?",
                (
                    run.state,
                    run.ended_at,
                    run.step_count,
                    run.input_tokens,
                    run.output_tokens,
                    run.cost_usd,
                    None if run.error is None else text_for_column(run.error),
                    dumps(run.output),
                    run.run_id,
                ),
            )

    # --- reading ------------------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix."""

        def find(db: sqlite3.Connection) -> list[Any]:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                return [row]
            pattern = run_id.replace("\\", "").replace("%", "").replace("_", "") + "%"
            return db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id LIKE ? LIMIT 2", (pattern,)
            ).fetchall()

        self._settle()
        rows = self._read(find) if run_id else []
        if len(rows) != 1:
            what = "matches several runs; give more of it" if rows else "is not in"
            raise RunNotFound(f"run {run_id!r} {what} the store {self.url}")
        return _run_record(rows[0])

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
        """Runs, newest first (filters and paging as in `Store.list_runs`; dead runs settled first)."""
        self._settle()
        where, params = _run_filters(session, state, model, since, until, top_level)
        if label is not None:
            where.append("label = ?")
            params.append(label)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None or offset:
            # SQLite needs a LIMIT for an OFFSET; -1 means none.
            sql += f" LIMIT {max(int(limit), 0) if limit is not None else -1} OFFSET {max(int(offset), 0)}"
        return [_run_record(r) for r in self._read(lambda db: db.execute(sql, params).fetchall())]

    def _settle(self) -> None:
        """Mark runs whose recording process on this machine is gone as abandoned (see `liveness`)."""
        running = self._read(
            lambda db: db.execute(
                "SELECT run_id, owner, heartbeat FROM runs WHERE state = 'running'"
            ).fetchall()
        )

        def mark(run_id: str, owner: str, error: str, cutoff: float | None) -> None:
            late = "" if cutoff is None else " AND heartbeat < ?"
            with self._transaction() as db:
                db.execute(
                    "UPDATE runs SET state = 'abandoned', error = ? WHERE run_id = ? AND state = 'running' "
                    "AND owner = ?" + late,
                    (error, run_id, owner, *([] if cutoff is None else [cutoff])),
                )

        settle_abandoned([tuple(r) for r in running], time.time(), mark)  # type: ignore[misc]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's memory steps, in order."""
        return self._read(
            lambda db: [
                self._load(r[0])
                for r in db.execute("SELECT data FROM steps WHERE run_id = ? ORDER BY idx", (run_id,))
            ]
        )

    def events(self, run_id: str) -> list[EventRecord]:
        """The run's events, in order."""
        return self._read(
            lambda db: [
                EventRecord(run_id, r[0], r[1], r[2], self._load(r[3]))
                for r in db.execute(
                    "SELECT seq, type, at, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
                )
            ]
        )

    def children(self, run_id: str) -> list[RunRecord]:
        """Runs of managed agents started by this run."""
        self._settle()
        rows = self._read(
            lambda db: db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE parent_run_id = ? ORDER BY started_at", (run_id,)
            ).fetchall()
        )
        return [_run_record(r) for r in rows]

    def delete_run(self, run_id: str) -> int:
        """Delete the run with its steps, events, journal and child runs; blobs no run uses go too."""
        run_id = self.get_run(run_id).run_id
        with self._transaction() as db:
            ids, frontier = [run_id], [run_id]
            while frontier:
                marks = ",".join("?" * len(frontier))
                frontier = [
                    r[0]
                    for r in db.execute(f"SELECT run_id FROM runs WHERE parent_run_id IN ({marks})", frontier)
                ]
                ids += frontier
            marks = ",".join("?" * len(ids))
            candidates: set[str] = set()
            for table, column in _BLOB_HOLDERS:
                for (text,) in db.execute(f"SELECT {column} FROM {table} WHERE run_id IN ({marks})", ids):
                    candidates.update(_BLOB_REF.findall(text or ""))
            for table in ("steps", "events", "journal", "leases", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
            _drop_unused_blobs(db, candidates)
        return len(ids)

    # --- blobs and journal -------------------------------------------------------------------------------------

    def put_blob(self, data: str) -> str:
        """Keep `data` once under its sha256."""
        with self._transaction() as db:
            return self._put(db)(data)

    def get_blob(self, digest: str) -> str:
        """The string stored under `digest`."""
        return self._read(lambda db: self._get(digest))

    def journal(self, run_id: str) -> Journal:
        """The run's effect journal over the `journal` table."""
        return StoreJournal(self, run_id)

    def journal_entries(self, run_id: str) -> list[JournalEntry]:
        """The latest entry per seq, in seq order."""
        from ..journal import JournalEntry

        return self._read(
            lambda db: [
                JournalEntry(r[0], r[1], r[2], r[3], self._load(r[4]), r[5])
                for r in db.execute(
                    "SELECT seq, kind, key, status, result, parent FROM journal WHERE run_id = ? ORDER BY seq",
                    (run_id,),
                )
            ]
        )

    def journal_append(self, run_id: str, entry: JournalEntry) -> None:
        """Write `entry`, superseding an earlier entry for its seq; committed on return (see `synchronous`)."""
        from ..journal import STATUSES

        if entry.status not in STATUSES:
            raise ValueError(f"journal entry status must be one of {STATUSES}, got {entry.status!r}")
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO journal (run_id, seq, kind, key, status, result, parent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    entry.seq,
                    entry.kind,
                    entry.key,
                    entry.status,
                    to_column(entry.result, self._put(db)),
                    entry.parent,
                ),
            )

    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, replace: str | None = None) -> str | None:
        """Take or renew `run_id`'s lease for `owner` (see `codeloop.journal.Leases`); None, or the holder."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT owner, expires FROM leases WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and row[1] > now and row[0] not in (owner, replace):
                return str(row[0])
            db.execute(
                "INSERT OR REPLACE INTO leases (run_id, owner, expires) VALUES (?, ?, ?)",
                (run_id, owner, now + ttl_s),
            )
            return None

    def release_lease(self, run_id: str, owner: str) -> None:
        """Give `run_id`'s lease up if `owner` holds it."""
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, owner))

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._db.close()


SQLiteJournal = StoreJournal
"""The journal an SQLite store hands out (the shared store adapter)."""


def _check_file(path: Path) -> None:
    # sqlite3 would happily treat a foreign file as an empty database until the first write; read the header.
    if path.is_dir():
        raise StoreError(
            f"the run store path {path} is a folder; give a file path such as {path / 'runs.db'}"
        )
    try:
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read the run store {path}: {exc}") from exc
    if header and header != _HEADER:
        raise StoreError(
            f"{path} is not a codeloop run store: it is not an SQLite database (it starts with {header[:8]!r}); "
            "give another path with store=/--store (the file was left untouched)"
        )


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    extended = getattr(exc, "sqlite_errorcode", 0)
    code = extended & 0xFF
    if code == _SQLITE_FULL:
        return StoreFullError(f"the run store {path} is full: {exc}")
    if (
        extended == _SQLITE_IOERR_WRITE
    ):  # how SQLite reports ENOSPC after a short write, or EFBIG (RLIMIT_FSIZE)
        return StoreFullError(f"the run store {path} is full (disk full or over a file size limit): {exc}")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreError(f"the run store {path} is corrupt: {exc}")
    return StoreError(f"the run store {path} failed: {exc}")


_BLOB_HOLDERS = (("steps", "data"), ("events", "data"), ("journal", "result"))
_BLOB_REF = re.compile(r'"__codeloop_blob__":"([0-9a-f]{64})"')


def _drop_unused_blobs(db: sqlite3.Connection, candidates: set[str]) -> None:
    # Blobs are shared between runs (stored once); drop only those no remaining row mentions.
    for digest in candidates:
        pattern = f'%"{digest}"%'
        used = any(
            db.execute(f"SELECT 1 FROM {table} WHERE {column} LIKE ? LIMIT 1", (pattern,)).fetchone()
            for table, column in _BLOB_HOLDERS
        )
        if not used:
            db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))


def _run_filters(
    session: str | None,
    state: str | None,
    model: str | None,
    since: float | None,
    until: float | None,
    top_level: bool,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("session", session), ("state", state), ("model_id", model)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(text_for_column(value))  # as written by `_run_row`
    if since is not None:
        where.append("started_at >= ?")
        params.append(float(since))
    if until is not None:
        where.append("started_at < ?")
        params.append(float(until))
    if top_level:
        where.append("parent_run_id IS NULL")
    return where, params


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        text_for_column(run.agent),
        run.agent_class,
        text_for_column(run.task),
        run.state,
        text_for_column(run.model_id),
        None if run.session is None else text_for_column(run.session),
        run.parent_run_id,
        run.started_at,
        run.ended_at,
        run.step_count,
        run.input_tokens,
        run.output_tokens,
        run.cost_usd,
        None if run.error is None else text_for_column(run.error),
        dumps(run.output),
        dumps(run.config),
        run.owner,
        None if run.label is None else text_for_column(run.label),
    )


def _run_record(row: Any) -> RunRecord:
    values = list(row)
    values[15] = json.loads(values[15]) if values[15] is not None else None
    values[16] = json.loads(values[16])
    return RunRecord(*values)
