"""The run store on PostgreSQL, through psycopg 3 (`pip install "codeloop[postgres]"`).

`PostgresStore("postgresql://user:password@host:5432/db")` keeps the same tables as the SQLite store
(`base.schema_statements("postgres")`), inside a PostgreSQL schema of their own (`codeloop` unless told
otherwise) so that they never mix with an application's tables in a shared database.

Many processes (and threads) may write one store at once: every write is one short transaction, rows are keyed
so that writers of different runs never touch the same row, blobs are inserted with ON CONFLICT DO NOTHING in
a fixed order (two writers storing the same blobs cannot deadlock), and creating or migrating the schema is
serialized by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import json
import os
import re
import select
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .._extras import install_hint, is_installed
from ..journal import STATUSES, JournalEntry
from . import base
from .base import EventRecord, RunNotFound, RunRecord, StoreError, StoreFullError, StoreJournal

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "PostgresJournal", "redact_url"]

DEFAULT_SCHEMA = "codeloop"

MIGRATIONS: dict[int, list[str]] = {1: base.MIGRATION_1_TO_2, 2: base.migration_2_to_3("postgres")}
"""Statements (PostgreSQL dialect) that take a store from schema version N to N+1, keyed by N; applied in order,
in the transaction that opens the store, like `codeloop.store.sqlite.MIGRATIONS`."""
_APPLICATION = "codeloop-runs"  # meta's "application": what tells a codeloop store from someone else's tables

# pg_advisory_xact_lock key under which the schema is created or migrated (any constant; "codeloop" in ASCII).
_SCHEMA_LOCK_KEY = 0x636F64656C6F6F70
_DISK_FULL = "53100"  # SQLSTATE disk_full, e.g. "could not extend file ...: No space left on device"
_BLOB_GC_LOCK_KEY = _SCHEMA_LOCK_KEY + 1
# Where blob references live (`base.externalize` writes them as {"__codeloop_blob__": digest} in JSON text).
_BLOB_HOLDERS = (("steps", "data"), ("events", "data"), ("journal", "result"))
_BLOB_REFERENCE = re.compile(r'"__codeloop_blob__":"([0-9a-f]{64})"')
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
"""The server's time in seconds since the epoch, for heartbeats."""
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# A text value PostgreSQL cannot hold as-is (NUL, lone surrogates) is kept as JSON behind this mark; a value that
# happens to start with the mark is escaped too, so reading back is unambiguous.
_ESCAPE_MARK = "\x01"
# Connections inherited over fork(): never closed from the child (closing would end the parent's session),
# only kept referenced so that garbage collection does not close them either.
_INHERITED: list[Any] = []


def redact_url(url: str) -> str:
    """`url` without its password, for messages and `Store.url`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))


def _to_db(text: str) -> str:
    if "\x00" not in text and not text.startswith(_ESCAPE_MARK):
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:  # a lone surrogate, e.g. from os.fsdecode of a foreign file name
            pass
    return _ESCAPE_MARK + json.dumps(text, ensure_ascii=True)


def _from_db(text: str | None) -> str | None:
    if text is not None and text.startswith(_ESCAPE_MARK):
        decoded: str = json.loads(text[1:])
        return decoded
    return text


def _json_to_db(value: Any) -> str:
    return _to_db(base.dumps(value))


def _json_from_db(text: str | None) -> Any:
    decoded = _from_db(text)
    return None if decoded is None else json.loads(decoded)


class PostgresStore:
    """A `Store` in a PostgreSQL database, reached by a `postgresql://` URL (or any libpq connection string).

    The connection is made, and the schema created or migrated forward, when the store is created: a wrong
    URL, a server that does not answer, a foreign `schema` or one written by a newer codeloop is a `StoreError`
    right away, before any run starts. `schema` is the PostgreSQL schema (namespace) the tables live in;
    `connect_timeout` (seconds) is generous because fifty processes connecting at once on a loaded machine need it.
    """

    def __init__(self, url: str, *, schema: str = DEFAULT_SCHEMA, connect_timeout: float = 30.0) -> None:
        if not is_installed("psycopg"):
            raise StoreError(
                f"a PostgreSQL store ({redact_url(url)}) needs psycopg 3, which is not installed: "
                f"{install_hint('postgres')}"
            )
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StoreError(
                f"schema={schema!r} is not a plain PostgreSQL name: use lowercase letters, digits and "
                "underscores, starting with a letter or underscore (at most 63)"
            )
        self.url = redact_url(url)
        self.schema = schema
        self._conninfo = url
        self._connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        with self._transaction() as cursor:
            self._ensure_schema(cursor)

    # --- connection ---
    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
                application_name="codeloop",
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store {self.url}: {_first_line(exc)}"
            ) from exc
        # The schema may not exist yet (it is created under the advisory lock); naming it first is harmless.
        connection.execute(f"SET search_path TO {self.schema}")
        return connection

    def _live_connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():
            if self._connection is not None:
                _INHERITED.append(self._connection)
            self._connection, self._pid = None, os.getpid()
        connection = self._connection
        if connection is not None and (connection.closed or connection.broken or _server_spoke(connection)):
            # Closed by the server while idle (restart, pg_terminate_backend, idle timeout): replaced before
            # anything of the next transaction is sent, so nothing is written twice.
            connection.close()
            self._connection = None
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    @contextmanager
    def _transaction(self, *, pipelined: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on this process's connection, its psycopg errors turned into `StoreError`s.

        `pipelined`: for a transaction that only writes, everything (BEGIN ... COMMIT) goes to the server in one
        round trip instead of one per statement; its errors surface when the block ends.
        """
        import psycopg

        with self._lock:
            try:
                connection = self._live_connection()
                with ExitStack() as stack:
                    if pipelined:
                        stack.enter_context(connection.pipeline())
                    stack.enter_context(connection.transaction())
                    yield stack.enter_context(connection.cursor())
            except psycopg.Error as exc:
                # By SQLSTATE: psycopg's DiskFull is not a subclass of its class-53 InsufficientResources.
                if exc.sqlstate == _DISK_FULL:
                    raise StoreFullError(
                        f"the PostgreSQL store {self.url} is full: {_first_line(exc)}"
                    ) from exc
                raise StoreError(f"the PostgreSQL store {self.url} failed: {_first_line(exc)}") from exc

    def _ensure_schema(self, cursor: psycopg.Cursor[Any]) -> None:
        # Serialized across processes: concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,)
        )
        tables = sorted(row[0] for row in cursor.fetchall())
        where = f"{self.url} (schema {self.schema})"
        if not tables:
            for statement in base.schema_statements("postgres"):
                cursor.execute(statement)
            cursor.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)",
                [("application", _APPLICATION), ("schema_version", str(base.SCHEMA_VERSION))],
            )
            return
        if "meta" not in tables:
            raise StoreError(
                f"{where} is not a codeloop run store: it holds tables ({', '.join(tables)}) but no codeloop "
                "`meta` table; point the store at another database or pass another schema="
            )
        cursor.execute("SELECT key, value FROM meta")
        meta = dict(cursor.fetchall())
        version = meta.get("schema_version", "")
        if meta.get("application") != _APPLICATION or not version.isdigit():
            raise StoreError(
                f"{where} is not a codeloop run store: its `meta` table does not name codeloop's run store "
                "and a schema version; point the store at another database or pass another schema="
            )
        found = int(version)
        if found > base.SCHEMA_VERSION:
            raise StoreError(
                f"{where} was written by a newer codeloop: schema version {found}, and this codeloop knows "
                f"version {base.SCHEMA_VERSION} at most; upgrade codeloop to use this store"
            )
        for version_before in range(found, base.SCHEMA_VERSION):
            for statement in MIGRATIONS[version_before]:
                cursor.execute(statement)
            cursor.execute(
                "UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version_before + 1),)
            )

    # --- blobs ---
    @staticmethod
    def _column(value: Any, pending: dict[str, str]) -> str:
        """`value` as a JSON text column (`base.to_column`), its large strings collected into `pending`."""

        def put(data: str) -> str:
            digest = base.blob_digest(data)
            pending[digest] = data
            return digest

        return _to_db(base.to_column(value, put))

    @staticmethod
    def _write_blobs(cursor: psycopg.Cursor[Any], pending: dict[str, str]) -> None:
        # Shared lock: `delete_run` drops blobs no row refers to under the exclusive one, so it never drops a blob
        # that a transaction still in flight has found present and is about to refer to.
        # Sorted: two transactions inserting overlapping blobs take the index locks in the same order.
        if pending:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_BLOB_GC_LOCK_KEY,))
            cursor.executemany(
                "INSERT INTO blobs (digest, data) VALUES (%s, %s) ON CONFLICT (digest) DO NOTHING",
                [(digest, _to_db(pending[digest])) for digest in sorted(pending)],
            )

    def _internalize(self, cursor: psycopg.Cursor[Any], values: Sequence[Any]) -> list[Any]:
        """`values` with their blob references put back, fetching every blob they need in one query."""
        digests: set[str] = set()

        def collect(digest: str) -> str:
            digests.add(digest)
            return ""

        for value in values:
            base.internalize(value, collect)
        found: dict[str, str] = {}
        if digests:
            cursor.execute("SELECT digest, data FROM blobs WHERE digest = ANY(%s)", (sorted(digests),))
            found = {digest: _from_db(data) or "" for digest, data in cursor.fetchall()}

        def get(digest: str) -> str:
            if digest not in found:
                raise StoreError(f"the PostgreSQL store {self.url} lacks blob {digest}: the store is damaged")
            return found[digest]

        return [base.internalize(value, get) for value in values]

    def put_blob(self, data: str) -> str:
        """Keep `data` once under its sha256 hex digest (returned); storing it again costs nothing."""
        digest = base.blob_digest(data)
        with self._transaction(pipelined=True) as cursor:
            self._write_blobs(cursor, {digest: data})
        return digest

    def get_blob(self, digest: str) -> str:
        """The string stored under `digest`; raises `StoreError` when missing."""
        with self._transaction() as cursor:
            cursor.execute("SELECT data FROM blobs WHERE digest = %s", (digest,))
            row = cursor.fetchone()
        if row is None:
            raise StoreError(f"no blob {digest} in the PostgreSQL store {self.url}")
        return _from_db(row[0]) or ""

    # --- writing a run ---
    def start_run(self, run: RunRecord) -> None:
        """Insert the run (state "running"); a run that is resumed starts again under its id and is running again."""
        import psycopg

        try:
            with self._transaction(pipelined=True) as cursor:
                cursor.execute(
                    f"""INSERT INTO runs (run_id, agent, agent_class, task, state, model_id, session,
                    parent_run_id, started_at, ended_at, step_count, input_tokens, output_tokens, cost_usd,
                    error, output, config, owner, label, heartbeat) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,
                    %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {_NOW}) ON CONFLICT (run_id) DO UPDATE
                    SET state = EXCLUDED.state, ended_at = NULL, error = NULL, owner = EXCLUDED.owner,
                    label = COALESCE(EXCLUDED.label, runs.label), heartbeat = EXCLUDED.heartbeat""",
                    (
                        run.run_id,
                        _to_db(run.agent),
                        _to_db(run.agent_class),
                        _to_db(run.task),
                        run.state,
                        _to_db(run.model_id),
                        None if run.session is None else _to_db(run.session),
                        run.parent_run_id,
                        run.started_at,
                        run.ended_at,
                        run.step_count,
                        run.input_tokens,
                        run.output_tokens,
                        run.cost_usd,
                        None if run.error is None else _to_db(run.error),
                        _json_to_db(run.output),
                        _json_to_db(run.config),
                        None if run.owner is None else _to_db(run.owner),
                        None if run.label is None else _to_db(run.label),
                    ),
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise StoreError(f"run {run.run_id} is already in the store {self.url}") from exc
            raise

    def add_step(self, run_id: str, index: int, step: dict[str, Any]) -> None:
        """Record the run's `index`-th memory step (`MemoryStep.to_dict()`); re-adding an index replaces it."""
        self.record(run_id, [(index, step)], [])

    def add_events(self, run_id: str, events: list[EventRecord]) -> None:
        """Append events (their `seq` is unique per run)."""
        self.record(run_id, [], events)

    def record(self, run_id: str, steps: list[tuple[int, dict[str, Any]]], events: list[EventRecord]) -> None:
        """Steps (by index, replacing) and events in one transaction, with the blobs they refer to."""
        if not steps and not events:
            return
        pending: dict[str, str] = {}
        step_rows = [
            (run_id, index, _to_db(str(step.get("type", ""))), self._column(step, pending))
            for index, step in steps
        ]
        event_rows = [
            (
                run_id,
                event.seq,
                _to_db(event.type),
                event.at,
                self._column(event.data, pending),
            )
            for event in events
        ]
        with self._transaction(pipelined=True) as cursor:
            self._write_blobs(cursor, pending)
            if step_rows:
                cursor.executemany(
                    """INSERT INTO steps (run_id, idx, kind, data) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (run_id, idx) DO UPDATE SET kind = EXCLUDED.kind, data = EXCLUDED.data""",
                    step_rows,
                )
            if event_rows:
                cursor.executemany(
                    "INSERT INTO events (run_id, seq, type, at, data) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, seq) DO NOTHING",
                    event_rows,
                )
            # A step written is a sign of life (see `heartbeat`), in the same transaction and round trip.
            cursor.execute(
                f"UPDATE runs SET heartbeat = {_NOW} WHERE run_id = %s AND state = 'running'", (run_id,)
            )

    def finish_run(self, run: RunRecord) -> None:
        """Update the run's row with its end: state, ended_at, usage, cost, error, output, step_count."""
        with self._transaction(pipelined=True) as cursor:
            cursor.execute(
                """UPDATE runs SET state = %s, ended_at = %s, step_count = %s, input_tokens = %s,
                output_tokens = %s, cost_usd = %s, error = %s, output = %s WHERE run_id = %s""",
                (
                    run.state,
                    run.ended_at,
                    run.step_count,
                    run.input_tokens,
                    run.output_tokens,
                    run.cost_usd,
                    None if run.error is None else _to_db(run.error),
                    _json_to_db(run.output),
                    run.run_id,
                ),
            )

    # --- reading ---
    _RUN_COLUMNS = (
        "run_id, agent, agent_class, task, state, model_id, session, parent_run_id, started_at, ended_at, "
        "step_count, input_tokens, output_tokens, cost_usd, error, output, config, owner, label"
    )

    @staticmethod
    def _run_from_row(row: Sequence[Any]) -> RunRecord:
        return RunRecord(
            run_id=row[0],
            agent=_from_db(row[1]) or "",
            agent_class=_from_db(row[2]) or "",
            task=_from_db(row[3]) or "",
            state=row[4],
            model_id=_from_db(row[5]) or "",
            session=_from_db(row[6]),
            parent_run_id=row[7],
            started_at=row[8],
            ended_at=row[9],
            step_count=row[10],
            input_tokens=row[11],
            output_tokens=row[12],
            cost_usd=row[13],
            error=_from_db(row[14]),
            output=_json_from_db(row[15]),
            config=_json_from_db(row[16]) or {},
            owner=_from_db(row[17]),
            label=_from_db(row[18]),
        )

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or a unique id prefix; raises `RunNotFound`."""
        rows: list[Any] = []
        self._settle()
        if run_id:
            with self._transaction() as cursor:
                cursor.execute(
                    f"SELECT {self._RUN_COLUMNS} FROM runs WHERE starts_with(run_id, %s) ORDER BY run_id LIMIT 2",
                    (run_id,),
                )
                rows = cursor.fetchall()
        exact = [row for row in rows if row[0] == run_id]
        if len(exact) == 1 or len(rows) == 1:
            return self._run_from_row((exact or rows)[0])
        what = "matches several runs; give more of it" if rows else "is not in"
        raise RunNotFound(f"run {run_id!r} {what} the store {self.url}")

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
        conditions: list[str] = []
        parameters: list[Any] = []
        for column, value in (("session", session), ("state", state), ("model_id", model), ("label", label)):
            if value is not None:
                conditions.append(f"{column} = %s")
                parameters.append(_to_db(value))  # as `start_run` wrote it
        if since is not None:
            conditions.append("started_at >= %s")
            parameters.append(float(since))
        if until is not None:
            conditions.append("started_at < %s")
            parameters.append(float(until))
        if top_level:
            conditions.append("parent_run_id IS NULL")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT {self._RUN_COLUMNS} FROM runs{where} ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            query += " LIMIT %s"
            parameters.append(max(0, limit))
        if offset:
            query += " OFFSET %s"
            parameters.append(max(0, offset))
        with self._transaction() as cursor:
            cursor.execute(query, parameters)
            return [self._run_from_row(row) for row in cursor.fetchall()]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's memory steps as dicts, in order (blobs already put back)."""
        with self._transaction() as cursor:
            cursor.execute("SELECT data FROM steps WHERE run_id = %s ORDER BY idx", (run_id,))
            values = [_json_from_db(row[0]) for row in cursor.fetchall()]
            return self._internalize(cursor, values)

    def events(self, run_id: str) -> list[EventRecord]:
        """The run's events in order (blobs already put back)."""
        with self._transaction() as cursor:
            cursor.execute("SELECT seq, type, at, data FROM events WHERE run_id = %s ORDER BY seq", (run_id,))
            rows = cursor.fetchall()
            data = self._internalize(cursor, [_json_from_db(row[3]) for row in rows])
        return [
            EventRecord(run_id=run_id, seq=row[0], type=_from_db(row[1]) or "", at=row[2], data=values)
            for row, values in zip(rows, data, strict=True)
        ]

    def children(self, run_id: str) -> list[RunRecord]:
        """Runs whose parent is this run (managed agents' runs), oldest first."""
        self._settle()
        with self._transaction() as cursor:
            cursor.execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs WHERE parent_run_id = %s ORDER BY started_at, run_id",
                (run_id,),
            )
            return [self._run_from_row(row) for row in cursor.fetchall()]

    def _settle(self) -> None:
        """Mark runs whose recording process on this machine is gone as abandoned (see `liveness`)."""
        with self._transaction() as cursor:
            # Heartbeats are the server's clock, like leases: hosts with skewed clocks still agree.
            cursor.execute(f"SELECT run_id, owner, heartbeat, {_NOW} FROM runs WHERE state = 'running'")
            rows = cursor.fetchall()
            if not rows:
                return
            running = [(row[0], _from_db(row[1]), row[2]) for row in rows]
            now = float(rows[0][3])

        def mark(run_id: str, owner: str, error: str, cutoff: float | None) -> None:
            late = "" if cutoff is None else " AND heartbeat < %s"
            with self._transaction(pipelined=True) as cursor:
                cursor.execute(
                    "UPDATE runs SET state = 'abandoned', error = %s WHERE run_id = %s AND state = 'running' "
                    "AND owner = %s" + late,
                    (_to_db(error), run_id, _to_db(owner), *([] if cutoff is None else [cutoff])),
                )

        base.settle_abandoned(running, now, mark)

    def heartbeat(self, run_ids: list[str]) -> None:
        """Mark these runs' recording process as alive now, on the server's clock (see `liveness`)."""
        with self._transaction(pipelined=True) as cursor:
            cursor.execute(
                f"UPDATE runs SET heartbeat = {_NOW} WHERE run_id = ANY(%s) AND state = 'running'",
                (list(run_ids),),
            )

    def delete_run(self, run_id: str) -> int:
        """Delete the run (id or unique prefix), its steps, events, journal, lease and child runs, and the blobs
        no remaining row refers to; the number of runs deleted. Raises `RunNotFound`."""
        run_id = self.get_run(run_id).run_id
        with self._transaction() as cursor:
            cursor.execute(
                """WITH RECURSIVE doomed(run_id) AS (
                    SELECT run_id FROM runs WHERE run_id = %s
                    UNION SELECT runs.run_id FROM runs JOIN doomed ON runs.parent_run_id = doomed.run_id)
                SELECT run_id FROM doomed""",
                (run_id,),
            )
            doomed = [row[0] for row in cursor.fetchall()]
            # Taken before reading what the doomed rows refer to: writers of blob references wait until we commit.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_BLOB_GC_LOCK_KEY,))
            candidates: set[str] = set()
            for table, column in _BLOB_HOLDERS:
                cursor.execute(f"SELECT {column} FROM {table} WHERE run_id = ANY(%s)", (doomed,))
                for (text,) in cursor.fetchall():
                    candidates.update(_BLOB_REFERENCE.findall(text or ""))
            for table in ("steps", "events", "journal", "leases", "runs"):
                cursor.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", (doomed,))
            for digest in sorted(candidates):
                still_used = " OR ".join(
                    f"EXISTS (SELECT 1 FROM {table} WHERE strpos({column}, %(digest)s) > 0)"
                    for table, column in _BLOB_HOLDERS
                )
                cursor.execute(
                    f"DELETE FROM blobs WHERE digest = %(digest)s AND NOT ({still_used})", {"digest": digest}
                )
        return len(doomed)

    # --- journal, schema, lifetime ---
    def journal(self, run_id: str) -> PostgresJournal:
        """The run's effect journal (see `codeloop.journal`), backed by the `journal` table."""
        return StoreJournal(self, run_id)

    def schema_version(self) -> int:
        """The schema version the store is stamped with."""
        with self._transaction() as cursor:
            cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            row = cursor.fetchone()
        if row is None:
            raise StoreError(f"the PostgreSQL store {self.url} has lost its schema version")
        return int(row[0])

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._pid == os.getpid():
                connection.close()
            elif connection is not None:
                _INHERITED.append(connection)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"

    # For the store's `StoreJournal`: kept here so that every SQL statement lives in this class.
    def journal_entries(self, run_id: str) -> list[JournalEntry]:
        with self._transaction() as cursor:
            cursor.execute(
                "SELECT seq, kind, key, status, result, parent FROM journal WHERE run_id = %s ORDER BY seq",
                (run_id,),
            )
            rows = cursor.fetchall()
            results = self._internalize(cursor, [_json_from_db(row[4]) for row in rows])
        return [
            JournalEntry(
                seq=row[0],
                kind=_from_db(row[1]) or "",
                key=row[2],
                status=row[3],
                result=result,
                parent=row[5],
            )
            for row, result in zip(rows, results, strict=True)
        ]

    def journal_append(self, run_id: str, entry: JournalEntry) -> None:
        if entry.status not in STATUSES:
            raise ValueError(f"journal entry status must be one of {STATUSES}, got {entry.status!r}")
        pending: dict[str, str] = {}
        result = self._column(entry.result, pending)
        with self._transaction(pipelined=True) as cursor:
            # The journal decides what a resume repeats: its commit waits for the server's disk whatever the
            # server's or the role's synchronous_commit default says.
            cursor.execute("SET LOCAL synchronous_commit = on")
            self._write_blobs(cursor, pending)
            cursor.execute(
                """INSERT INTO journal (run_id, seq, kind, key, status, result, parent)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (run_id, seq) DO UPDATE SET kind = EXCLUDED.kind, key = EXCLUDED.key,
                status = EXCLUDED.status, result = EXCLUDED.result, parent = EXCLUDED.parent""",
                (run_id, entry.seq, _to_db(entry.kind), entry.key, entry.status, result, entry.parent),
            )

    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, replace: str | None) -> str | None:
        # One statement, atomic under concurrency: the row lock ON CONFLICT takes serializes competing takers.
        # Expiry is the server's clock, so that resumers on machines whose clocks disagree still agree.
        with self._transaction() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = on")
            cursor.execute(
                """INSERT INTO leases (run_id, owner, expires)
                VALUES (%(run)s, %(owner)s, extract(epoch FROM clock_timestamp()) + %(ttl)s)
                ON CONFLICT (run_id) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires
                WHERE leases.expires <= extract(epoch FROM clock_timestamp())
                    OR leases.owner = %(owner)s OR leases.owner = %(replace)s
                RETURNING owner""",
                {
                    "run": run_id,
                    "owner": _to_db(owner),
                    "ttl": float(ttl_s),
                    "replace": None if replace is None else _to_db(replace),
                },
            )
            if cursor.fetchone() is not None:
                return None
            cursor.execute("SELECT owner FROM leases WHERE run_id = %s", (run_id,))
            row = cursor.fetchone()
        return (_from_db(row[0]) or "") if row is not None else ""

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._transaction(pipelined=True) as cursor:
            cursor.execute("DELETE FROM leases WHERE run_id = %s AND owner = %s", (run_id, _to_db(owner)))


PostgresJournal = StoreJournal
"""The journal a PostgreSQL store hands out (the shared store adapter)."""


def _server_spoke(connection: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection has something to read: from an idle session that is only ever the server's
    goodbye (an error and end of file) — asked without a round trip."""
    try:
        poller = select.poll()
    except AttributeError:  # Windows: no poll(); a dead connection then shows as an error on its next use
        return False
    poller.register(connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
