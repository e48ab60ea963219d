"""Agents recording into PostgreSQL (`store="postgresql://..."`), on a real server the tests start themselves:
what a run leaves there, sessions and replay across agents, the `runs` CLI, and a full disk."""

from __future__ import annotations

import base64
import functools
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.postgres_support import PostgresServer, find_bin_dir, postgres_problem, psycopg_problem

from codeloop import CodeAgent
from codeloop.store.base import RunRecord
from codeloop.store.opening import open_store
from codeloop.store.postgres import PostgresStore
from codeloop.testing import ScriptedModel

pytestmark = [
    pytest.mark.skipif(
        (postgres_problem() or psycopg_problem()) is not None,
        reason=postgres_problem() or psycopg_problem() or "PostgreSQL is available",
    ),
    # Starting a server (initdb) and many client processes: minutes, not seconds, on a loaded 2-core machine.
    pytest.mark.timeout(600),
]

ROOT = Path(__file__).resolve().parent.parent


def code(snippet: str) -> str:
    return f"Thought: go on.\n```python\n{snippet}\n```"


def make_agent(script: Any, store: Any, **kwargs: Any) -> CodeAgent:
    kwargs.setdefault("verbosity_level", 0)
    kwargs.setdefault("executor", "local")
    return CodeAgent(tools=[], model=ScriptedModel(script), store=store, **kwargs)


def test_a_run_recorded_in_postgres_holds_its_steps_events_and_children_but_no_password(
    postgres_url: str,
) -> None:
    import psycopg

    researcher = make_agent(
        [code("final_answer('Paris')")], postgres_url, name="researcher", description="Finds."
    )
    manager = make_agent(
        [
            code("report = researcher(task='capital of France')\nprint('got', report)"),
            code("final_answer(report)"),
        ],
        postgres_url,
        managed_agents=[researcher],
    )
    assert isinstance(manager.store, PostgresStore)
    result = manager.run("ask", return_full_result=True)
    assert result.state == "success" and "Paris" in result.output

    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    run = store.get_run(result.run_id)
    assert (run.state, run.output, run.task) == ("success", result.output, "ask")
    assert run.input_tokens == result.token_usage.input_tokens > 0
    steps = store.steps(result.run_id)
    assert steps == [step.to_dict() for step in result.steps]
    assert "got " in steps[1]["observations"] and "Paris" in steps[1]["observations"]
    types = [event.type for event in store.events(result.run_id)]
    assert types[0] == "RunStarted" and types[-1] == "RunFinished"
    assert [child.agent for child in store.children(result.run_id)] == ["researcher"]

    password = urlsplit(postgres_url).password
    assert password and password not in store.url and password not in json.dumps(run.config)
    with psycopg.connect(postgres_url) as connection:
        dumped = connection.execute(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM codeloop.runs) t"
        ).fetchone()
    assert dumped is not None and password not in dumped[0]


def test_a_session_continues_from_postgres_and_replay_reads_it(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_agent([code("print('remembered'); final_answer('noted: 41')")], postgres_url)
    first_run = first.run("remember 41", session="user-42", return_full_result=True)
    agent = make_agent([code("final_answer(42)")], postgres_url)  # fresh agent: memory comes from the server
    assert agent.run("add one to the number", session="user-42") == 42
    seen = "\n".join(str(m.content) for m in agent.model.requests[0].messages)  # type: ignore[attr-defined]
    assert "remember 41" in seen and "noted: 41" in seen
    capsys.readouterr()
    make_agent([], postgres_url).replay(run_id=first_run.run_id)
    assert "remembered" in capsys.readouterr().out


def test_the_runs_cli_reads_postgres_with_the_password_from_the_environment(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    result = make_agent([code("final_answer(9)")], postgres_url).run("nine", return_full_result=True)
    # The password need not be on the command line: libpq reads PGPASSWORD (or ~/.pgpass).
    without_password = postgres_url.replace(f":{postgres_server.password}@", "@")
    env = {**os.environ, "PGPASSWORD": postgres_server.password, "PYTHONPATH": _pythonpath()}
    listed = subprocess.run(
        [sys.executable, "-m", "codeloop.cli", "runs", "--store", without_password, "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["run_id"], row["state"], row["output"]) for row in rows] == [(result.run_id, "success", 9)]
    deleted = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeloop.cli",
            "runs",
            "--store",
            without_password,
            "delete",
            result.run_id[:12],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert deleted.returncode == 0, deleted.stderr
    assert PostgresStore(postgres_url).list_runs() == []


def _pythonpath() -> str:
    # The child imports this checkout's codeloop, as the test process does.
    import codeloop

    source = str(Path(codeloop.__file__).resolve().parent.parent)
    return os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])


@pytest.fixture
def url_on_a_small_disk() -> Iterator[str]:
    """A database whose tables live on a 1 MB tmpfs (a tablespace): a disk that fills up, for real.

    On a server of its own, stopped without a last checkpoint, so that what cannot be written there never
    troubles the server the other tests share.
    """
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    mount_point = server.base / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        server.stop()
        pytest.skip(
            "a full disk under PostgreSQL is made by mounting a 1 MB tmpfs, which needs root (CAP_SYS_ADMIN): "
            + (mounted.stderr.strip() or f"mount exited {mounted.returncode}")
        )
    unmount = functools.partial(subprocess.run, ["umount", "--lazy", str(mount_point)], capture_output=True)
    try:
        server.start()  # hands the temporary directory, and so the mount point, to the server's user
        os.chown(mount_point, server.base.stat().st_uid, server.base.stat().st_gid)
        url = server.new_database()
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as connection:
            connection.execute(f"CREATE TABLESPACE small LOCATION '{mount_point}'")
            # Every table the store creates in this database lands on the small disk.
            connection.execute(f'ALTER DATABASE "{urlsplit(url).path[1:]}" SET default_tablespace = small')
        yield url
    finally:
        server.stop("immediate", before_removal=unmount)


def test_a_full_disk_stops_the_run_as_an_error_keeping_what_was_written(url_on_a_small_disk: str) -> None:
    postgres_url = url_on_a_small_disk
    # 2 MB that PostgreSQL's compression cannot shrink (the store's disk holds 1 MB).
    noise = base64.b64encode(random.Random(0).randbytes(1_500_000)).decode()
    script = [
        code("print('step one is small')"),
        code(f"# {noise}\nprint(2)"),
        code("print('never run')"),
        code("final_answer(1)"),
    ]
    agent = make_agent(lambda request: script[request.index], postgres_url)
    result = agent.run("fill the disk", return_full_result=True)
    assert result.state == "error" and "full" in (result.error or "")
    assert len(agent.model.requests) == 2  # type: ignore[attr-defined]  # no paid call after the store filled
    store = PostgresStore(postgres_url)
    run = store.get_run(result.run_id)
    assert run.state == "error" and "full" in (run.error or "")
    steps = store.steps(result.run_id)
    assert [step["type"] for step in steps][:2] == ["task", "action"]
    assert "step one is small" in steps[1]["observations"]
    # the journal write of step 2's reply failed first: step 2 is kept at most as a failed step without the reply
    assert len(steps) == 2 or (steps[2]["type"] == "action" and steps[2]["model_output"] is None)
    store.close()


def test_a_killed_run_shows_abandoned_in_postgres_and_resumes(postgres_url: str) -> None:
    from tests.test_store_processes import check_a_killed_run_shows_abandoned_and_resumes

    check_a_killed_run_shows_abandoned_and_resumes(postgres_url)


def test_a_schema_1_store_is_migrated_to_the_current_one_keeping_its_runs(postgres_url: str) -> None:
    import psycopg

    from codeloop.store import SCHEMA_VERSION

    with PostgresStore(postgres_url) as store:
        store.start_run(RunRecord("a" * 32, "calc", "CodeAgent", "old task", model_id="m"))
    with psycopg.connect(postgres_url, autocommit=True) as connection:  # what schema 1 looked like
        connection.execute("SET search_path TO codeloop")
        connection.execute("DROP INDEX runs_label")
        connection.execute("ALTER TABLE runs DROP COLUMN owner")
        connection.execute("ALTER TABLE runs DROP COLUMN label")
        connection.execute("ALTER TABLE runs DROP COLUMN heartbeat")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with PostgresStore(postgres_url) as store:
        assert SCHEMA_VERSION == 3 and store.schema_version() == 3
        [run] = store.list_runs()
        assert (run.task, run.state, run.owner, run.label) == ("old task", "running", None, None)
        store.start_run(RunRecord("b" * 32, "calc", "CodeAgent", "new", model_id="m", label="eval:x"))
        assert [r.run_id for r in store.list_runs(label="eval:x")] == ["b" * 32]
