"""The run store (SQLite): what a run records, bad files, schema versions, blobs, the journal, sessions."""

from __future__ import annotations

import random
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent
from codeloop.journal import JournalEntry
from codeloop.store import RunNotFound, StoreError
from codeloop.store import sqlite as sqlite_store
from codeloop.store.opening import codeloop_home, default_store_path, open_store
from codeloop.store.sqlite import SQLiteStore
from codeloop.testing import ScriptedModel

# A recorder that fails is only warned about by the agent: here any such warning fails the test.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def code(snippet: str) -> str:
    return f"Thought: go on.\n```python\n{snippet}\n```"


def make_agent(script: Any, store: Any, **kwargs: Any) -> CodeAgent:
    kwargs.setdefault("verbosity_level", 0)
    kwargs.setdefault("executor", "local")
    return CodeAgent(tools=kwargs.pop("tools", []), model=ScriptedModel(script), store=store, **kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


# --- what a run records ----------------------------------------------------------------------------------------


def test_a_run_is_recorded_by_default_in_codeloop_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODELOOP_HOME", str(tmp_path / "home"))
    agent = CodeAgent(
        tools=[], model=ScriptedModel([code("final_answer(7)")]), executor="local", verbosity_level=0
    )
    result = agent.run("seven", return_full_result=True)
    assert default_store_path() == tmp_path / "home" / "runs.db"
    assert (tmp_path / "home" / "runs.db").is_file()
    run = SQLiteStore(tmp_path / "home" / "runs.db").get_run(result.run_id)
    assert (run.state, run.output, run.task) == ("success", 7, "seven")


def test_runs_steps_events_usage_and_config_are_recorded(db: Path) -> None:
    agent = make_agent(
        [code("x = 6 * 7\nprint('x is', x)"), code("1 / 0"), code("final_answer(x + 1)")], db, max_steps=5
    )
    result = agent.run("compute", return_full_result=True)
    store = SQLiteStore(db)
    run = store.get_run(result.run_id)
    assert run.state == "success" and run.output == 43 and run.step_count == 3
    assert run.input_tokens == result.token_usage.input_tokens > 0
    assert run.output_tokens == result.token_usage.output_tokens > 0
    assert run.ended_at is not None and run.ended_at >= run.started_at
    assert run.config["class"] == "codeloop.code_agent:CodeAgent"
    assert run.config["settings"]["max_steps"] == 5 and run.config["settings"]["executor"] == "local"
    steps = store.steps(result.run_id)
    assert [s["type"] for s in steps] == ["task", "action", "action", "action", "final_answer"]
    assert "x is 42" in steps[1]["observations"]
    assert steps[2]["error_type"] == "AgentExecutionError" and "ZeroDivisionError" in steps[2]["error"]
    assert steps[3]["is_final_answer"] is True  # set by the loop after StepFinished: rewritten at the end
    assert [s.to_dict() for s in result.steps] == steps  # the store holds exactly the run's steps
    types = [e.type for e in store.events(result.run_id)]
    assert types[0] == "RunStarted" and types[-2:] == ["FinalAnswer", "RunFinished"]
    assert types.count("StepFinished") == 3 and "StepError" in types
    assert "ModelOutput" not in types  # held by the step; its time is a mark of the step's StepFinished row
    finished = [e.data for e in store.events(result.run_id) if e.type == "StepFinished"]
    marks = finished[0]["marks"]
    assert marks["StepStarted"] <= marks["ModelOutput"] <= marks["CodeAction"] <= marks["Observation"]
    assert [e.seq for e in store.events(result.run_id)] == list(range(len(types)))


def test_the_recorded_configuration_holds_no_secret(db: Path) -> None:
    from codeloop.models import OpenAIModel
    from codeloop.testing import ScriptedLLMServer

    with ScriptedLLMServer([code("final_answer('ok')")]) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="sk-TOPSECRET-123")
        agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, store=db)
        result = agent.run("hi", return_full_result=True)
    config = SQLiteStore(db).get_run(result.run_id).config
    assert config["model"]["model_id"] == "gpt-4o"
    raw = b"".join(p.read_bytes() for p in db.parent.glob("runs.db*"))
    assert b"TOPSECRET" not in raw


def test_store_none_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODELOOP_HOME", str(tmp_path / "home"))
    agent = make_agent([code("final_answer(1)")], None)
    assert agent.run("one") == 1 and agent.store is None
    assert not (tmp_path / "home").exists()


def test_a_managed_agents_run_links_to_its_managers_run_from_any_thread(db: Path) -> None:
    # Off the main thread, LocalExecutor runs code on its worker thread; that thread did not see the manager's
    # run id, so a web server's agents recorded their managed agents' runs with no parent.
    import threading

    researcher = make_agent(
        [code("final_answer('Paris')")], db, name="researcher", description="Finds facts."
    )
    manager = make_agent(
        [code("final_answer(researcher(task='capital of France'))")], db, managed_agents=[researcher]
    )
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(manager.run("ask", return_full_result=True)))
    thread.start()
    thread.join(60)
    children = SQLiteStore(db).children(results[0].run_id)
    assert [c.agent for c in children] == ["researcher"] and children[0].parent_run_id == results[0].run_id


def test_a_managed_agents_run_links_to_its_managers_run(db: Path) -> None:
    researcher = make_agent(
        [code("final_answer('Paris')")], db, name="researcher", description="Finds facts."
    )
    manager = make_agent(
        [code("report = researcher(task='capital of France')\nprint(report)"), code("final_answer(report)")],
        db,
        managed_agents=[researcher],
    )
    result = manager.run("ask", return_full_result=True)
    store = SQLiteStore(db)
    children = store.children(result.run_id)
    assert [c.agent for c in children] == ["researcher"]
    assert children[0].parent_run_id == result.run_id and children[0].state == "success"
    assert store.get_run(result.run_id).parent_run_id is None
    assert store.get_run(result.run_id).config["managed_agents"] == ["researcher"]
    # a later, separate run of the researcher is nobody's child
    researcher.model = ScriptedModel([code("final_answer('Rome')")])
    alone = researcher.run("capital of Italy", return_full_result=True)
    assert store.get_run(alone.run_id).parent_run_id is None
    assert store.delete_run(result.run_id) == 2  # the manager's run and its child's
    with pytest.raises(RunNotFound):
        store.get_run(children[0].run_id)
    assert store.get_run(alone.run_id).state == "success"


def test_large_observations_are_stored_once(db: Path) -> None:
    # Three different snippets printing the same 20 KB (the same snippet twice would get a "repeated" note).
    snippets = ["print('z' * 20000)", "print('z' * 10000 * 2)", "print('zz' * 10000)"]
    agent = make_agent([code(snippets[0]), code(snippets[1]), code("final_answer(1)")], db)
    agent.run("twice")
    agent.model = ScriptedModel([code(snippets[2]), code("final_answer(2)")])
    agent.run("again")
    store = SQLiteStore(db)
    con = sqlite3.connect(db)
    blobs = con.execute("SELECT data FROM blobs").fetchall()
    assert sum(1 for (data,) in blobs if data.startswith("z" * 20000)) == 1  # the 3 steps share one copy
    assert con.execute("SELECT max(length(data)) FROM steps").fetchone()[0] < 5000
    observations = [
        s["observations"]
        for r in store.list_runs()
        for s in store.steps(r.run_id)
        if s.get("code_action") in snippets
    ]
    assert len(observations) == 3 and all(o.startswith("z" * 20000) for o in observations)


def test_a_value_json_cannot_hold_is_stored_as_a_flagged_repr(db: Path) -> None:
    from codeloop.memory import ActionStep
    from codeloop.models.base import ToolCall

    store = SQLiteStore(db)
    step = ActionStep(step_number=1, tool_calls=[ToolCall("c1", "lookup", {"when": {1, 2}, "n": 3})])
    store.add_step("r1", 1, step.to_dict())
    [stored] = store.steps("r1")
    flagged = {"__codeloop_repr__": "{1, 2}", "type": "set"}
    assert stored["tool_calls"][0]["arguments"] == {"when": flagged, "n": 3}
    store.journal("r1").append(JournalEntry(0, "tool_in_code", "k", "done", {"value": {1, 2}, "ok": (1,)}))
    [entry] = store.journal("r1").entries()
    assert entry.result == {"value": flagged, "ok": [1]}  # a tuple is stored as JSON stores it: an array


def test_a_failing_store_warns_and_the_run_goes_on(db: Path) -> None:
    class Broken(SQLiteStore):
        def record(self, *args: Any) -> None:
            raise StoreError("the store is broken (a test)")

    agent = make_agent([code("print(1)"), code("final_answer(5)")], Broken(db))
    with pytest.warns(RuntimeWarning, match="the store is broken"):
        result = agent.run("five", return_full_result=True)
    assert result.state == "success" and result.output == 5
    assert SQLiteStore(db).get_run(result.run_id).state == "success"  # what could be written, was


def test_replay_reads_the_run_from_the_store(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = make_agent([code("print('from-the-first-run')"), code("final_answer(3)")], db)
    first = agent.run("first", return_full_result=True)
    agent.model = ScriptedModel([code("final_answer(4)")])
    agent.run("second")
    capsys.readouterr()
    other = make_agent([], db)  # another agent, e.g. in another process: only the store knows the run
    other.replay(run_id=first.run_id)
    out = capsys.readouterr().out
    assert "from-the-first-run" in out and "Final answer: 3" in out
    agent.replay()  # the agent's own last run
    out = capsys.readouterr().out
    assert "Final answer: 4" in out and "from-the-first-run" not in out


# --- sessions ----------------------------------------------------------------------------------------------------


def test_a_session_continues_the_conversation_from_the_store(db: Path) -> None:
    make_agent([code("final_answer('noted: 41')")], db).run("remember 41", session="user-42")
    agent = make_agent([code("final_answer(42)")], db)  # a fresh agent: its memory comes from the store
    assert agent.run("add one to the number", session="user-42") == 42
    seen = "\n".join(str(m.content) for m in agent.model.requests[0].messages)  # type: ignore[attr-defined]
    assert "remember 41" in seen and "noted: 41" in seen
    other = make_agent([code("final_answer(0)")], db)
    other.run("unrelated", session="someone-else")
    seen = "\n".join(str(m.content) for m in other.model.requests[0].messages)  # type: ignore[attr-defined]
    assert "remember 41" not in seen
    store = SQLiteStore(db)
    assert [r.task for r in store.list_runs(session="user-42")] == ["add one to the number", "remember 41"]


def test_a_session_needs_a_store() -> None:
    agent = make_agent([code("final_answer(1)")], None)
    with pytest.raises(ValueError, match="session='s' needs a run store"):
        agent.run("x", session="s")
    with pytest.raises(ValueError, match="non-empty name"):
        make_agent([], "x.db" if False else None).run("x", session=" ")


# --- bad files, schema versions ----------------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_naming_it_and_left_untouched(db: Path) -> None:
    db.write_text("name,score\nann,3\n")
    with pytest.raises(StoreError, match=rf"{db}.*not an SQLite database"):
        SQLiteStore(db)
    with pytest.raises(StoreError, match=str(db)):
        make_agent([], db)  # at construction, before any model call
    assert db.read_text() == "name,score\nann,3\n"


def test_a_foreign_sqlite_database_is_refused(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(
        StoreError, match=rf"{db} is an SQLite database but not a codeloop run store.*invoices"
    ):
        SQLiteStore(db)
    assert sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_a_corrupt_store_is_refused_naming_the_file(db: Path) -> None:
    store = SQLiteStore(db)
    store.close()
    data = bytearray(db.read_bytes())
    data[16:] = b"\xff" * (len(data) - 16)  # keep the magic header, garble the rest
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match=str(db)):
        SQLiteStore(db)
    assert db.read_bytes() == bytes(data)  # never reset


def test_a_store_written_by_a_newer_schema_is_refused_naming_both_versions(db: Path) -> None:
    SQLiteStore(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=rf"{db} has schema version 99.*reads schema version 3"):
        SQLiteStore(db)


def test_an_older_schema_is_migrated_forward_keeping_its_runs(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent([code("final_answer(1)")], db)
    old = agent.run("old run", return_full_result=True)
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", 4)
    monkeypatch.setitem(sqlite_store.MIGRATIONS, 3, ["ALTER TABLE runs ADD COLUMN labels TEXT"])
    store = SQLiteStore(db)
    assert store.schema_version() == 4
    assert store.get_run(old.run_id).output == 1
    assert "labels" in [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(runs)")]


def test_open_store_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store(None) is None
    assert isinstance(open_store("a.db"), SQLiteStore) and (tmp_path / "a.db").is_file()
    assert isinstance(open_store("sqlite:///b.db"), SQLiteStore) and (tmp_path / "b.db").is_file()
    assert open_store(f"sqlite:///{tmp_path}/c.db").url == str(tmp_path / "c.db")  # type: ignore[union-attr]
    store = SQLiteStore(tmp_path / "d.db")
    assert open_store(store) is store
    with pytest.raises(ValueError, match="unknown scheme 'mysql'"):
        open_store("mysql://x/y")
    with pytest.raises(ValueError, match="unknown option"):
        open_store("sqlite:///e.db?cache=1")
    full = open_store("sqlite:///f.db?synchronous=full")
    assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # type: ignore[union-attr]  # FULL
    assert SQLiteStore(tmp_path / "g.db")._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with pytest.raises(ValueError, match="synchronous='sometimes'"):
        open_store("sqlite:///h.db?synchronous=sometimes")
    with pytest.raises(ValueError, match="is not a store"):
        open_store(42)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="is a folder"):
        open_store(str(tmp_path))


def test_codeloop_home_follows_the_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.delenv("CODELOOP_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert codeloop_home() == tmp_path / ".local" / "share" / "codeloop"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert codeloop_home() == tmp_path / "xdg" / "codeloop"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert codeloop_home() == tmp_path / "Library" / "Application Support" / "codeloop"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert codeloop_home() == tmp_path / "local" / "codeloop"
    monkeypatch.setenv("CODELOOP_HOME", str(tmp_path / "mine"))
    assert codeloop_home() == tmp_path / "mine"


def test_an_unusable_default_store_warns_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.db").write_text("not a database")
    monkeypatch.setenv("CODELOOP_HOME", str(home))
    agent = CodeAgent(
        tools=[], model=ScriptedModel([code("final_answer(2)")]), executor="local", verbosity_level=0
    )
    with pytest.warns(RuntimeWarning, match=r"runs are not recorded: .*runs.db is not a codeloop run store"):
        assert agent.run("two") == 2
    assert (home / "runs.db").read_text() == "not a database"


# --- full disk ---------------------------------------------------------------------------------------------------


def test_a_full_store_stops_the_run_as_an_error_keeping_what_was_written(db: Path) -> None:
    SQLiteStore(db).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    # Room for a few small steps, not for step 2's 150 KB of incompressible model output.
    spec = f"sqlite:///{db}?max_page_count={pages + 25}"
    noise = "".join(random.Random(0).choice("abcdefghij") for _ in range(150_000))
    script = [
        code("print('step one is small')"),
        code(f"# {noise}\nprint(2)"),
        code("print('never run')"),
        code("final_answer(1)"),
    ]
    # A script function, not a list: the recorded model configuration must not hold the noise itself.
    agent = make_agent(lambda request: script[request.index], spec)
    result = agent.run("fill the disk", return_full_result=True)
    assert result.state == "error" and "full" in (result.error or "")
    assert len(agent.model.requests) == 2  # type: ignore[attr-defined]  # no paid call after the store filled
    store = SQLiteStore(db)
    run = store.get_run(result.run_id)
    assert run.state == "error" and "full" in (run.error or "")
    steps = store.steps(result.run_id)
    assert [s["type"] for s in steps][:2] == ["task", "action"]
    assert "step one is small" in steps[1]["observations"]
    # the reply that did not fit is nowhere: the journal write of step 2's reply failed first, so step 2 is
    # kept at most as a failed step without it
    assert all("aaaaaaaaaa" not in str(s) and "bbbbbbbbbb" not in str(s) for s in steps)
    assert len(steps) == 2 or (steps[2]["type"] == "action" and steps[2]["model_output"] is None)


# --- journal and leases ------------------------------------------------------------------------------------------


def test_the_journal_keeps_the_latest_entry_per_seq_and_large_results_once(db: Path) -> None:
    store = SQLiteStore(db)
    journal = store.journal("run-a")
    big = "r" * 50000
    journal.append(JournalEntry(0, "model", "k0", "started"))
    journal.append(JournalEntry(1, "code", "k1", "started"))
    journal.append(JournalEntry(0, "model", "k0", "done", {"text": big}))
    journal.append(JournalEntry(2, "tool_in_code", "k2", "done", big, parent=1))
    again = SQLiteStore(db).journal("run-a")  # another connection, as another process would see it
    assert [(e.seq, e.status) for e in again.entries()] == [(0, "done"), (1, "started"), (2, "done")]
    assert again.entries()[0].result == {"text": big} and again.entries()[2].parent == 1
    assert sqlite3.connect(db).execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    assert store.journal("run-b").entries() == []
    with pytest.raises(ValueError, match="status must be one of"):
        journal.append(JournalEntry(3, "model", "k3", "maybe"))


def test_a_lease_admits_one_resumer_until_it_expires(db: Path) -> None:
    first = SQLiteStore(db).journal("run-a")
    second = SQLiteStore(db).journal("run-a")
    assert first.acquire_lease("proc-1", 60) is None  # type: ignore[attr-defined]
    assert second.acquire_lease("proc-2", 60) == "proc-1"  # type: ignore[attr-defined]
    assert first.acquire_lease("proc-1", 60) is None  # type: ignore[attr-defined]  # renewing
    assert second.acquire_lease("proc-2", 60, replace="proc-1") is None  # type: ignore[attr-defined]
    assert first.acquire_lease("proc-1", 60) == "proc-2"  # type: ignore[attr-defined]
    second.release_lease("proc-2")  # type: ignore[attr-defined]
    assert first.acquire_lease("proc-1", 0.0) is None  # type: ignore[attr-defined]  # expires at once
    assert second.acquire_lease("proc-2", 60) is None  # type: ignore[attr-defined]


def test_get_run_accepts_a_unique_prefix_and_names_the_store(db: Path) -> None:
    agent = make_agent([code("final_answer(1)")], db)
    run_id = agent.run("x", return_full_result=True).run_id
    store = SQLiteStore(db)
    assert store.get_run(run_id[:20]).run_id == run_id
    with pytest.raises(RunNotFound, match=rf"run 'nope' is not in the store {db}"):
        store.get_run("nope")


def test_tool_calling_runs_are_recorded_with_their_calls(db: Path) -> None:
    from codeloop import tool

    @tool
    def add(a: int, b: int) -> int:
        """Adds.

        Args:
            a: first
            b: second
        """
        return a + b

    script = [
        {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "c1"}]},
        {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "5"}, "id": "c2"}]},
    ]
    agent = ToolCallingAgent(tools=[add], model=ScriptedModel(script), verbosity_level=0, store=db)
    result = agent.run("add", return_full_result=True)
    store = SQLiteStore(db)
    steps = store.steps(result.run_id)
    assert steps[1]["tool_calls"][0]["arguments"] == {"a": 2, "b": 3}
    assert steps[1]["tool_results"][0]["output"] == "5"
    calls = [e.data["tool"] for e in store.events(result.run_id) if e.type == "ToolCallStarted"]
    assert calls == ["add", "final_answer"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get_run(result.run_id).output == "5"


def test_text_with_lone_surrogates_is_recorded_and_reads_back_the_same(db: Path) -> None:
    # Agent code printing undecodable bytes gives observations with lone surrogates, which UTF-8 cannot hold.
    odd = "bad \udcff byte"
    agent = make_agent([code(f"print({odd!r} * 200)"), code(f"final_answer({odd!r})")], db)
    result = agent.run(f"task with {odd}", return_full_result=True)
    store = SQLiteStore(db)
    run = store.get_run(result.run_id)
    assert run.output == odd  # JSON columns: exactly
    assert run.task == "task with bad \\udcff byte"  # plain text columns: escaped, visibly
    assert store.steps(result.run_id)[1]["observations"].startswith(odd * 200)


def test_async_runs_and_runs_in_many_threads_are_all_recorded(db: Path) -> None:
    import asyncio
    import threading

    agent = make_agent([code("final_answer('async')")], db)
    result = asyncio.run(agent.arun("async run", return_full_result=True))
    store = SQLiteStore(db)
    assert store.get_run(result.run_id).output == "async"

    answers: dict[int, Any] = {}

    def work(n: int) -> None:
        worker = make_agent([code(f"print({n})"), code(f"final_answer({n})")], db)
        answers[n] = worker.run(f"thread {n}", return_full_result=True)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == list(range(8))
    for n, res in answers.items():
        run = store.get_run(res.run_id)
        assert (run.output, run.state, run.parent_run_id) == (
            n,
            "success",
            None,
        )  # no thread is another's child
        assert [s["type"] for s in store.steps(res.run_id)] == ["task", "action", "action", "final_answer"]


def test_a_run_row_that_failed_to_be_written_is_written_with_the_next_step(db: Path) -> None:
    class BusyOnce(SQLiteStore):
        calls = 0

        def start_run(self, run: Any) -> None:
            BusyOnce.calls += 1
            if BusyOnce.calls == 1:
                raise StoreError("database is locked (a test)")
            super().start_run(run)

    agent = make_agent([code("print(1)"), code("final_answer(2)")], BusyOnce(db))
    with pytest.warns(RuntimeWarning, match="database is locked"):
        result = agent.run("two", return_full_result=True)
    run = SQLiteStore(db).get_run(result.run_id)
    assert (run.state, run.output, run.task) == ("success", 2, "two")
    assert len(SQLiteStore(db).steps(result.run_id)) == 4


def test_a_schema_1_store_is_migrated_to_the_current_one_keeping_its_runs(db: Path) -> None:
    from codeloop.store import SCHEMA_VERSION, RunRecord

    SQLiteStore(db).start_run(RunRecord("a" * 32, "calc", "CodeAgent", "old task", model_id="m"))
    con = sqlite3.connect(db)  # what schema 1 looked like
    con.executescript(
        "DROP INDEX runs_label; ALTER TABLE runs DROP COLUMN owner; ALTER TABLE runs DROP COLUMN label;"
        "ALTER TABLE runs DROP COLUMN heartbeat; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    con.close()
    store = SQLiteStore(db)
    assert SCHEMA_VERSION == 3 and store.schema_version() == 3
    [run] = store.list_runs()
    assert (run.task, run.state, run.owner, run.label) == ("old task", "running", None, None)
    store.start_run(RunRecord("b" * 32, "calc", "CodeAgent", "new", model_id="m", label="eval:x"))
    assert [r.run_id for r in store.list_runs(label="eval:x")] == ["b" * 32]


def test_a_paused_run_in_a_session_with_earlier_runs_resumes(db: Path) -> None:
    # The web UI's chat keeps one session per browser: approving a call there failed with RunDiverged, because
    # the replay rebuilt memory without the session's earlier runs, so its first model request differed.
    from codeloop import tool

    done: list[str] = []

    @tool(requires_approval=True)
    def send(text: str) -> str:
        """Send a message.

        Args:
            text: What to send.
        """
        done.append(text)
        return "sent"

    make_agent([code("final_answer('noted: 41')")], db).run("remember 41", session="chat")
    script = [code("print(send('hi'))"), code("final_answer('ok')")]
    agent = make_agent(script, db, tools=[send])
    paused = agent.run("say hi", session="chat", return_full_result=True)
    assert paused.state == "awaiting_approval" and done == []
    agent.model = ScriptedModel(script[1:])  # step 1's reply comes from the journal, not from the model
    result = agent.resume(paused.run_id, approvals={paused.pending[0].call_id: True}, return_full_result=True)
    assert result.state == "success" and result.output == "ok" and done == ["hi"]
    seen = "\n".join(str(m.content) for m in agent.model.requests[-1].messages)  # type: ignore[attr-defined]
    assert "remember 41" in seen and seen.count("say hi") == 1  # the session, and this run once
