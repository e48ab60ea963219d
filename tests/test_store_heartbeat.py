"""Runs recorded on other hosts: the heartbeat that tells a killed run from a running one without seeing its process.

A second machine is not needed: a run's row is written as another host's process would write it (its owner names
another host name), with a heartbeat as old or as fresh as the test needs, on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, tool
from codeloop import events as ev
from codeloop.store import RunRecord, liveness, open_store
from codeloop.store import heartbeat as heartbeat_module
from codeloop.testing import ScriptedModel

ELSEWHERE = "build-host-7.example:4242:1a2b3c4d-99"
"""A process of another machine, as `process_identity()` names it there."""


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


def set_heartbeat(spec: str, run_id: str, seconds_ago: float | None) -> None:
    """Write the run's heartbeat as its recording process last did, `seconds_ago` by the store's clock."""
    if spec.startswith("sqlite:///"):
        with sqlite3.connect(spec.removeprefix("sqlite:///")) as db:
            value = None if seconds_ago is None else time.time() - seconds_ago
            db.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (value, run_id))
        return
    import psycopg

    with psycopg.connect(spec, autocommit=True) as connection:
        connection.execute(
            "UPDATE codeloop.runs SET heartbeat = CASE WHEN %s::float8 IS NULL THEN NULL ELSE "
            "EXTRACT(EPOCH FROM clock_timestamp()) - %s::float8 END WHERE run_id = %s",
            (seconds_ago, seconds_ago, run_id),
        )


def heartbeat_of(spec: str, run_id: str) -> float | None:
    if spec.startswith("sqlite:///"):
        with sqlite3.connect(spec.removeprefix("sqlite:///")) as db:
            row = db.execute("SELECT heartbeat FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row[0] is None else float(row[0])
    import psycopg

    with psycopg.connect(spec) as connection:
        found = connection.execute(
            "SELECT heartbeat FROM codeloop.runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert found is not None
    return None if found[0] is None else float(found[0])


def remote_run(store: Any, run_id: str) -> None:
    store.start_run(RunRecord(run_id, "calc", "CodeAgent", "far away", model_id="m", owner=ELSEWHERE))


def test_a_run_from_another_host_is_abandoned_once_its_heartbeat_stopped_long_ago(spec: str) -> None:
    store = open_store(spec)
    assert store is not None
    stale, fresh, silent_a_while, unknown = "a" * 32, "b" * 32, "c" * 32, "d" * 32
    for run_id in (stale, fresh, silent_a_while, unknown):
        remote_run(store, run_id)
    set_heartbeat(spec, stale, liveness.ABANDON_AFTER_SECONDS + 60)
    set_heartbeat(spec, fresh, 0)
    set_heartbeat(spec, silent_a_while, 3 * liveness.HEARTBEAT_SECONDS)  # late beats: not yet abandoned
    set_heartbeat(spec, unknown, None)  # written before heartbeats existed: nothing says it stopped
    states = {r.run_id: r for r in store.list_runs()}
    assert {k: r.state for k, r in states.items()} == {
        stale: "abandoned",
        fresh: "running",
        silent_a_while: "running",
        unknown: "running",
    }
    error = states[stale].error or ""
    assert (
        "(pid 4242 on build-host-7.example) gave no sign of life for" in error and "codeloop resume" in error
    )
    # A late beat after a reader settled it changes nothing; the owner's own resume starts it running again.
    store.heartbeat([stale])
    assert store.get_run(stale).state == "abandoned"
    store.start_run(RunRecord(stale, "calc", "CodeAgent", "far away", model_id="m", owner=ELSEWHERE))
    assert store.get_run(stale).state == "running"


def test_a_live_run_renews_its_heartbeat_while_a_step_takes_long(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "HEARTBEAT_SECONDS", 0.05)
    release = threading.Event()

    @tool
    def slow() -> str:
        """A long tool call (it waits for the test)."""
        release.wait(120)
        return "done"

    agent = CodeAgent([slow], ScriptedModel(["```python\nfinal_answer(slow())\n```"]), executor="local",
                      store=spec, verbosity_level=0)  # fmt: skip
    ids: list[str] = []
    agent.listeners.append(
        lambda event: ids.append(event.run_id) if isinstance(event, ev.RunStarted) else None
    )
    runner = threading.Thread(target=agent.run, args=("wait",))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not ids and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ids, "the run did not start"
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline:  # no step ends while the tool waits: only the timer can beat
            first = first or heartbeat_of(spec, ids[0])
            now = heartbeat_of(spec, ids[0])
            if first is not None and now is not None and now > first:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the heartbeat was not renewed while the tool ran")
    finally:
        release.set()
        runner.join(60)
    assert agent.store is not None and agent.store.get_run(ids[0]).state == "success"
    assert heartbeat_module._thread is None  # no run left: no heartbeat thread left


def test_a_schema_2_store_is_migrated_to_3_and_its_runs_get_heartbeats(spec: str) -> None:
    store = open_store(spec)
    assert store is not None
    remote_run(store, "e" * 32)
    store.close()
    if spec.startswith("sqlite:///"):  # what schema 2 looked like
        with sqlite3.connect(spec.removeprefix("sqlite:///")) as db:
            db.executescript(
                "ALTER TABLE runs DROP COLUMN heartbeat; UPDATE meta SET value = '2' WHERE key = 'schema_version';"
            )
    else:
        import psycopg

        with psycopg.connect(spec, autocommit=True) as connection:
            connection.execute("ALTER TABLE codeloop.runs DROP COLUMN heartbeat")
            connection.execute("UPDATE codeloop.meta SET value = '2' WHERE key = 'schema_version'")
    migrated = open_store(spec)
    assert migrated is not None and migrated.schema_version() == 3
    assert migrated.get_run("e" * 32).state == "running"  # no heartbeat yet: it cannot be judged
    assert heartbeat_of(spec, "e" * 32) is None
    set_heartbeat(spec, "e" * 32, liveness.ABANDON_AFTER_SECONDS * 2)
    assert migrated.get_run("e" * 32).state == "abandoned"
