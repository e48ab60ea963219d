"""The PostgreSQL run store against a real PostgreSQL server that the tests start themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tests.postgres_support import postgres_problem, psycopg_problem

from codeloop.journal import JournalEntry
from codeloop.store import SCHEMA_VERSION, EventRecord, RunNotFound, RunRecord, Store, StoreError
from codeloop.store import base as store_base
from codeloop.store import postgres as postgres_module
from codeloop.store.postgres import PostgresStore, redact_url

pytestmark = [
    pytest.mark.skipif(
        (postgres_problem() or psycopg_problem()) is not None,
        reason=postgres_problem() or psycopg_problem() or "PostgreSQL is available",
    ),
    # Starting a server (initdb) and many client processes: minutes, not seconds, on a loaded 2-core machine.
    pytest.mark.timeout(600),
]

BIG = "observation line\n" * 200  # over the blob threshold: kept once in `blobs`


def _run(run_id: str, **fields: object) -> RunRecord:
    defaults: dict[str, object] = {
        "agent": "calc",
        "agent_class": "CodeAgent",
        "task": "add",
        "model_id": "m",
    }
    return RunRecord(run_id=run_id, **{**defaults, **fields})  # type: ignore[arg-type]


def _count(url: str, query: str) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("SET search_path TO codeloop")
        row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def store(postgres_url: str) -> PostgresStore:
    with PostgresStore(postgres_url) as opened:
        yield opened


def test_a_run_round_trips_with_steps_events_and_children(store: PostgresStore) -> None:
    assert isinstance(store, Store)
    parent_id, child_id = "0" * 31 + "1", "0" * 31 + "2"
    store.start_run(_run(parent_id, session="user-42", started_at=100.0, config={"max_steps": 5}))
    store.start_run(_run(child_id, parent_run_id=parent_id, started_at=101.0))
    store.add_step(parent_id, 0, {"kind": "task", "task": "add"})
    store.add_step(parent_id, 1, {"kind": "action", "observations": BIG})
    store.add_step(parent_id, 1, {"kind": "action", "observations": BIG + "replaced"})
    store.add_events(
        parent_id,
        [
            EventRecord(parent_id, 0, "RunStarted", 100.0, {"run_id": parent_id}),
            EventRecord(parent_id, 1, "X", 1.5, {}),
        ],
    )
    store.finish_run(
        _run(parent_id, state="success", ended_at=105.0, step_count=2, input_tokens=7, output={"answer": 55})
    )

    run = store.get_run(parent_id[:31] + "1")
    assert (run.state, run.ended_at, run.step_count, run.input_tokens) == ("success", 105.0, 2, 7)
    assert (run.output, run.config, run.session) == ({"answer": 55}, {"max_steps": 5}, "user-42")
    assert store.steps(parent_id) == [
        {"kind": "task", "task": "add"},
        {"kind": "action", "observations": BIG + "replaced"},
    ]
    assert [(e.seq, e.type, e.data) for e in store.events(parent_id)] == [
        (0, "RunStarted", {"run_id": parent_id}),
        (1, "X", {}),
    ]
    assert [child.run_id for child in store.children(parent_id)] == [child_id]
    assert [r.run_id for r in store.list_runs()] == [child_id, parent_id]
    assert [r.run_id for r in store.list_runs(session="user-42")] == [parent_id]
    assert [r.run_id for r in store.list_runs(state="running")] == [child_id]
    assert [r.run_id for r in store.list_runs(limit=1)] == [child_id]
    with pytest.raises(RunNotFound, match="matches several runs"):
        store.get_run("0000")

    assert store.delete_run(parent_id) == 2
    assert store.list_runs() == [] and store.steps(parent_id) == [] and store.events(parent_id) == []
    with pytest.raises(RunNotFound, match=parent_id):
        store.get_run(parent_id)
    with pytest.raises(RunNotFound, match=parent_id):
        store.delete_run(parent_id)


def test_large_strings_are_stored_once(store: PostgresStore, postgres_url: str) -> None:
    run_id = "a" * 32
    store.start_run(_run(run_id))
    for index in range(5):
        store.add_step(run_id, index, {"kind": "action", "observations": BIG, "index": index})
    store.journal(run_id).append(JournalEntry(0, "tools", "k", "done", result={"out": BIG}))
    assert store.put_blob(BIG) == store_base.blob_digest(BIG)
    assert store.get_blob(store_base.blob_digest(BIG)) == BIG
    assert _count(postgres_url, "SELECT count(*) FROM blobs") == 1
    assert _count(postgres_url, "SELECT max(length(data)) FROM steps") < 200
    assert [step["observations"] for step in store.steps(run_id)] == [BIG] * 5


def test_deleting_a_run_drops_the_blobs_only_it_used(store: PostgresStore, postgres_url: str) -> None:
    keep, drop = "2" * 32, "3" * 32
    own = "only the deleted run has this\n" * 100
    for run_id in (keep, drop):
        store.start_run(_run(run_id))
        store.record(run_id, [(0, {"type": "action", "observations": BIG})], [])
    store.record(
        drop, [(1, {"type": "action", "observations": own})], [EventRecord(drop, 0, "E", 1.0, {"o": own})]
    )
    store.journal(drop).append(JournalEntry(0, "tools", "k", "done", result=own))
    assert _count(postgres_url, "SELECT count(*) FROM blobs") == 2
    assert store.delete_run(drop[:8]) == 1
    assert _count(postgres_url, "SELECT count(*) FROM blobs") == 1
    assert store.get_blob(store_base.blob_digest(BIG)) == BIG
    with pytest.raises(StoreError, match="no blob"):
        store.get_blob(store_base.blob_digest(own))
    assert store.steps(keep) == [{"type": "action", "observations": BIG}]


def test_one_lease_per_run_taken_atomically(store: PostgresStore, postgres_url: str) -> None:
    run_id = "4" * 32
    store.start_run(_run(run_id))
    journal = store.journal(run_id)
    assert journal.acquire_lease("alpha", 60) is None
    assert journal.acquire_lease("alpha", 60) is None  # renewing one's own lease
    with PostgresStore(postgres_url) as other:
        assert other.journal(run_id).acquire_lease("beta", 60) == "alpha"
        assert other.journal(run_id).acquire_lease("beta", 60, replace="alpha") is None  # alpha found dead
        assert journal.acquire_lease("alpha", 60) == "beta"
        other.journal(run_id).release_lease("alpha")  # not the holder: changes nothing
        assert journal.acquire_lease("alpha", 60) == "beta"
        other.journal(run_id).release_lease("beta")
    assert journal.acquire_lease("alpha", 0.5) is None
    time.sleep(1.0)
    with PostgresStore(postgres_url) as other:
        assert other.journal(run_id).acquire_lease("gamma", 60) is None  # alpha's lease expired


LEASE_TAKER = textwrap.dedent(
    """
    import sys
    from codeloop.store.postgres import PostgresStore

    store = PostgresStore(sys.argv[1])
    journal = store.journal(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    print("holder:" + str(journal.acquire_lease(sys.argv[3], 60)), flush=True)
    """
)


def test_of_many_processes_racing_for_a_lease_exactly_one_wins(
    store: PostgresStore, postgres_url: str, tmp_path: Path
) -> None:
    run_id = "5" * 32
    store.start_run(_run(run_id))
    script = tmp_path / "lease.py"
    script.write_text(LEASE_TAKER)
    outputs = _run_together(
        [[sys.executable, str(script), postgres_url, run_id, f"owner-{index}"] for index in range(8)]
    )
    holders = [line.split(":", 1)[1] for line in outputs]
    winners = [index for index, holder in enumerate(holders) if holder == "None"]
    assert len(winners) == 1
    assert set(holders) - {"None"} == {f"owner-{winners[0]}"}


def _run_together(commands: list[list[str]], timeout: float = 90) -> list[str]:
    """Start every command, let them all go at once (each prints "ready" and waits for a line on stdin), and
    return the last line each printed; any failure fails the test with its stderr."""
    processes = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            ready = process.stdout.readline()
            assert ready == "ready\n", process.communicate(timeout=timeout)[1]
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results, failures = [], []
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            results.append(stdout.strip().splitlines()[-1] if stdout.strip() else "")
            if process.returncode != 0:
                failures.append(stderr)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert failures == []
    return results


def test_text_postgres_cannot_hold_as_is_round_trips(store: PostgresStore) -> None:
    # PostgreSQL text refuses NUL and lone surrogates; a binary file's content or a foreign file name has them.
    awkward = ["nul \x00 inside", "lone \ud800 surrogate", "\x01starts with the escape mark", "plain"]
    run_id = "b" * 32
    store.start_run(_run(run_id, task=awkward[0], session=awkward[1]))
    store.add_step(run_id, 0, {"kind": "action", "observations": awkward, "big": "\x00" + BIG})
    store.journal(run_id).append(JournalEntry(0, "code", "k", "done", result=awkward))
    store.finish_run(_run(run_id, state="error", error=awkward[0], output=awkward[1]))
    run = store.get_run(run_id)
    assert (run.task, run.session, run.error, run.output) == (awkward[0], awkward[1], awkward[0], awkward[1])
    assert store.steps(run_id) == [{"kind": "action", "observations": awkward, "big": "\x00" + BIG}]
    assert store.journal(run_id).entries()[0].result == awkward
    assert [r.run_id for r in store.list_runs(session=awkward[1])] == [run_id]


def test_the_journal_keeps_the_latest_status_per_seq_durably(store: PostgresStore, postgres_url: str) -> None:
    run_id = "c" * 32
    store.start_run(_run(run_id))
    journal = store.journal(run_id)
    journal.append(JournalEntry(0, "model", "k0", "started"))
    journal.append(JournalEntry(1, "code", "k1", "started"))
    journal.append(JournalEntry(2, "tool_in_code", "k2", "done", result={"x": BIG}, parent=1))
    journal.append(JournalEntry(0, "model", "k0", "done", result={"text": "hi"}))
    with pytest.raises(ValueError, match="status"):
        journal.append(JournalEntry(3, "model", "k3", "finished"))
    # Another connection (another process, after a crash) sees exactly what was appended.
    with PostgresStore(postgres_url) as reopened:
        entries = reopened.journal(run_id).entries()
    assert entries == [
        JournalEntry(0, "model", "k0", "done", result={"text": "hi"}),
        JournalEntry(1, "code", "k1", "started"),
        JournalEntry(2, "tool_in_code", "k2", "done", result={"x": BIG}, parent=1),
    ]
    assert store.journal("d" * 32).entries() == []
    store.delete_run(run_id)
    assert journal.entries() == []


def test_a_store_written_by_a_newer_schema_is_refused_naming_both_versions(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE codeloop.meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 7),)
        )
    with pytest.raises(StoreError) as refused:
        PostgresStore(postgres_url)
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 7}" in message and f"version {SCHEMA_VERSION}" in message
    assert "upgrade codeloop" in message
    assert (
        _count(postgres_url, "SELECT value::int FROM meta WHERE key = 'schema_version'") == SCHEMA_VERSION + 7
    )


def test_an_older_store_is_migrated_forward_keeping_its_runs(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PostgresStore(postgres_url) as old:
        old.start_run(_run("e" * 32))
    monkeypatch.setattr(store_base, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        postgres_module.MIGRATIONS,
        SCHEMA_VERSION,
        ["ALTER TABLE runs ADD COLUMN migrated TEXT DEFAULT 'yes'"],
    )
    with PostgresStore(postgres_url) as migrated:
        assert migrated.schema_version() == SCHEMA_VERSION + 1
        assert migrated.get_run("e" * 32).task == "add"
    assert _count(postgres_url, "SELECT count(*) FROM runs WHERE migrated = 'yes'") == 1
    # Opening it again migrates nothing twice (the ALTER would fail on the existing column).
    PostgresStore(postgres_url).close()


def test_a_foreign_schema_is_refused_not_reset(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA codeloop")
        connection.execute("CREATE TABLE codeloop.runs (id int)")
        connection.execute("INSERT INTO codeloop.runs VALUES (1)")
    with pytest.raises(StoreError, match=r"not a codeloop run store: it holds tables \(runs\)"):
        PostgresStore(postgres_url)
    assert _count(postgres_url, "SELECT count(*) FROM runs") == 1
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA theirs")
        connection.execute("CREATE TABLE theirs.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("INSERT INTO theirs.meta VALUES ('schema_version', '1')")
    with pytest.raises(StoreError, match=r"\(schema theirs\) is not a codeloop run store: its `meta` table"):
        PostgresStore(postgres_url, schema="theirs")
    # Another schema in the same database is fine.
    with PostgresStore(postgres_url, schema="agents") as elsewhere:
        assert elsewhere.schema_version() == SCHEMA_VERSION


def test_bad_urls_and_names_fail_at_construction_without_showing_the_password(postgres_url: str) -> None:
    unreachable = "postgresql://someone:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store") as refused:
        PostgresStore(unreachable, connect_timeout=5)
    assert "s3cret" not in str(refused.value) and "someone@127.0.0.1:1/nowhere" in str(refused.value)
    with pytest.raises(StoreError, match="schema="):
        PostgresStore(postgres_url, schema="x; DROP TABLE runs")
    with PostgresStore(postgres_url) as opened:
        password = opened._conninfo.split(":")[2].split("@")[0]
        assert password not in opened.url and password not in repr(opened)
    assert redact_url("postgresql://u:p@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"


def test_without_psycopg_the_store_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what Python does for a module that must not import
    with pytest.raises(StoreError, match=r'pip install "codeloop\[postgres\]"'):
        PostgresStore("postgresql://u:p@127.0.0.1:1/db")


def test_a_lost_connection_is_replaced(store: PostgresStore, postgres_url: str) -> None:
    import psycopg

    store.start_run(_run("f" * 32))
    assert store._connection is not None
    backend = store._connection.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        # pg_terminate_backend only signals the backend: wait until it is gone, or the write below may still
        # land on the old connection (and test nothing)
        deadline = time.monotonic() + 60
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone():
            assert time.monotonic() < deadline, f"backend {backend} did not end"
            time.sleep(0.05)
    store.add_step("f" * 32, 0, {"kind": "task"})  # lands, on a new connection
    assert store._connection is not None and store._connection.info.backend_pid != backend
    assert store.steps("f" * 32) == [{"kind": "task"}]


def test_a_forked_child_gets_its_own_connection(store: PostgresStore) -> None:
    store.start_run(_run("1" * 32))
    pid = os.fork()
    if pid == 0:  # the child: write through the inherited store object, then leave without cleanup
        code = 0
        try:
            store.add_step("1" * 32, 0, {"kind": "from-child"})
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's session survived the child (closing an inherited connection would have ended it).
    store.add_step("1" * 32, 1, {"kind": "from-parent"})
    assert [step["kind"] for step in store.steps("1" * 32)] == ["from-child", "from-parent"]


WRITER = textwrap.dedent(
    """
    import sys, time
    from codeloop.journal import JournalEntry
    from codeloop.store import EventRecord, RunRecord
    from codeloop.store.postgres import PostgresStore

    url, index, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    shared = "shared observation\\n" * 100
    print("ready", flush=True)
    sys.stdin.readline()  # every writer starts at once, on a database that has no schema yet
    store = PostgresStore(url)
    run_id = f"{index:032x}"
    store.start_run(RunRecord(run_id=run_id, agent=f"writer-{index}", task="write", started_at=time.time()))
    for step in range(steps):
        journal = store.journal(run_id)
        journal.append(JournalEntry(step, "model", f"k{step}", "started"))
        store.add_step(run_id, step, {"type": "action", "shared": shared, "own": f"{index}-{step}" * 400})
        store.add_events(run_id, [EventRecord(run_id, step, "StepFinished", time.time(), {"step": step})])
        journal.append(JournalEntry(step, "model", f"k{step}", "done", result={"shared": shared}))
    store.finish_run(RunRecord(run_id=run_id, state="success", ended_at=time.time(), step_count=steps))
    store.close()
    """
)


def test_many_processes_writing_one_store_lose_nothing(postgres_url: str, tmp_path: Path) -> None:
    writers, steps = 16, 10
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    _run_together(
        [[sys.executable, str(script), postgres_url, str(index), str(steps)] for index in range(writers)]
    )

    with PostgresStore(postgres_url) as store:
        runs = store.list_runs()
        assert sorted(run.run_id for run in runs) == [f"{index:032x}" for index in range(writers)]
        assert {run.state for run in runs} == {"success"}
        for run in runs:
            index = int(run.run_id, 16)
            recorded = store.steps(run.run_id)
            assert [step["own"] for step in recorded] == [f"{index}-{step}" * 400 for step in range(steps)]
            assert [event.data["step"] for event in store.events(run.run_id)] == list(range(steps))
            assert [entry.status for entry in store.journal(run.run_id).entries()] == ["done"] * steps
    # One shared blob for every writer's copies, plus each writer's own per-step blobs.
    assert _count(postgres_url, "SELECT count(*) FROM blobs") == 1 + writers * steps


def test_deleting_a_run_never_drops_a_blob_a_writer_in_flight_refers_to(postgres_url: str) -> None:
    # The interleaving that loses a blob without the lock, made deterministic: a writer finds the blob present
    # (so inserts nothing) and refers to it, then a deleter removes the blob's only committed reference.
    shared = "a blob two runs refer to\n" * 100
    deleter, writer = PostgresStore(postgres_url), PostgresStore(postgres_url)
    deleter.start_run(_run("6" * 32))
    deleter.add_step("6" * 32, 0, {"type": "action", "observations": shared})
    writer.start_run(_run("7" * 32))
    referred, deleted_at = threading.Event(), []

    def delete_when_referred() -> None:
        assert referred.wait(timeout=30)
        deleter.delete_run("6" * 32)
        deleted_at.append(time.monotonic())

    thread = threading.Thread(target=delete_when_referred)
    thread.start()
    pending: dict[str, str] = {}
    data = writer._column({"type": "action", "observations": shared}, pending)
    with writer._transaction() as cursor:  # what `record` sends, with a pause before COMMIT
        writer._write_blobs(cursor, pending)
        cursor.execute(
            "INSERT INTO steps (run_id, idx, kind, data) VALUES (%s, 0, 'action', %s)", ("7" * 32, data)
        )
        referred.set()
        time.sleep(1.0)
        committed_at = time.monotonic()
    thread.join(timeout=30)
    assert deleted_at and deleted_at[0] >= committed_at  # the deleter waited for the writer
    assert writer.steps("7" * 32) == [{"type": "action", "observations": shared}]
    deleter.close()
    writer.close()
