"""`codeloop runs list | show | export | delete`, and `codeloop run --store/--json` against a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent
from codeloop.cli import main
from codeloop.store.sqlite import SQLiteStore
from codeloop.testing import ScriptedModel
from codeloop.testing.server import ScriptedLLMServer

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def code(snippet: str) -> str:
    return f"```python\n{snippet}\n```"


def record(db: Path, script: list[Any], task: str, **kwargs: Any) -> str:
    agent = CodeAgent(tools=[], model=ScriptedModel(script), executor="local", verbosity_level=0, store=db)
    result = agent.run(task, return_full_result=True, **kwargs)
    return result.run_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def test_runs_list_filters_and_prints_json_rows(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = record(db, [code("final_answer(1)")], "first task", session="s1")
    second = record(db, [code("1/0")], "second task", max_steps=1)  # the forced answer exhausts the script
    third = record(db, [code("final_answer(3)")], "third task", session="s1")
    capsys.readouterr()
    assert main(["runs", "--store", str(db), "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run_id"] for r in rows] == [third, second, first]  # newest first
    assert rows[1]["state"] == "error" and rows[0]["output"] == 3 and "config" not in rows[0]
    assert main(["runs", "--store", str(db), "list", "--json", "--session", "s1", "--limit", "1"]) == 0
    assert [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()] == [third]
    assert main(["runs", "--store", str(db), "list", "--state", "error"]) == 0
    out = capsys.readouterr().out
    assert second in out and "second task" in out and first not in out


def test_runs_show_replays_the_run_from_the_store(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = record(db, [code("print('shown-from-store')"), code("final_answer(9)")], "show me")
    capsys.readouterr()
    assert main(["runs", "--store", str(db), "show", run_id[:16]]) == 0
    out = capsys.readouterr().out
    assert "show me" in out and "shown-from-store" in out and "Final answer: 9" in out
    assert f"run {run_id} | success | 2 steps" in out


def test_runs_export_is_the_documented_json(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    researcher = CodeAgent(
        tools=[], model=ScriptedModel([code("final_answer('Paris')")]), executor="local", verbosity_level=0,
        store=db, name="researcher", description="Finds facts.",
    )  # fmt: skip
    manager = CodeAgent(
        tools=[], executor="local", verbosity_level=0, store=db, managed_agents=[researcher],
        model=ScriptedModel([code("final_answer(researcher(task='capital of France'))")]),
    )  # fmt: skip
    run_id = manager.run("ask", return_full_result=True).run_id
    target = tmp_path / "run.json"
    assert main(["runs", "--store", str(db), "export", run_id, "-o", str(target)]) == 0
    data = json.loads(target.read_text())
    assert data["format"] == "codeloop-run/1"
    assert data["run"]["run_id"] == run_id and data["run"]["state"] == "success"
    assert set(data) == {"format", "run", "steps", "events", "journal", "children"}
    assert [s["type"] for s in data["steps"]] == ["task", "action", "final_answer"]
    assert data["events"][0]["type"] == "RunStarted" and data["events"][0]["data"]["run_id"] == run_id
    [child] = data["children"]
    assert child["run"]["agent"] == "researcher" and child["run"]["parent_run_id"] == run_id
    assert child["steps"][-1] == {"type": "final_answer", "output": "Paris", "token_usage": None}
    assert main(["runs", "--store", str(db), "export", run_id]) == 0  # to stdout
    assert json.loads(capsys.readouterr().out)["run"]["run_id"] == run_id


def test_runs_delete(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keep = record(db, [code("final_answer(1)")], "keep")
    gone = record(db, [code("final_answer(2)")], "gone")
    s1 = record(db, [code("final_answer(3)")], "in a session", session="s1")
    assert main(["runs", "--store", str(db), "delete", gone, "--session", "s1"]) == 0
    assert "Deleted 2 run(s)" in capsys.readouterr().err
    assert [r.run_id for r in SQLiteStore(db).list_runs()] == [keep]
    assert main(["runs", "--store", str(db), "delete", s1]) == 2
    assert f"run {s1!r} is not in the store {db}" in capsys.readouterr().err
    assert main(["runs", "--store", str(db), "delete"]) == 2
    assert "RUN_ID ... or --session" in capsys.readouterr().err


def test_runs_commands_name_a_bad_store_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert main(["runs", "--store", str(bad), "list"]) == 2
    assert f"{bad} is not a codeloop run store" in capsys.readouterr().err
    assert main(["runs", "--store", "none", "list"]) == 2


def test_run_records_into_the_given_store_and_prints_run_id_and_state(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedLLMServer([code("final_answer(5)")]) as server:
        argv = ["run", "five", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                "--executor", "local", "--json"]  # fmt: skip
        assert main([*argv, "--store", str(db)]) == 0
        out = json.loads(capsys.readouterr().out)
    assert out["state"] == "success" and len(out["run_id"]) == 32
    assert SQLiteStore(db).get_run(out["run_id"]).output == 5


def test_run_refuses_a_bad_store_before_calling_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with ScriptedLLMServer([code("final_answer(5)")]) as server:
        argv = ["run", "five", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                "--executor", "local"]  # fmt: skip
        assert main([*argv, "--store", str(bad)]) == 2
        assert f"{bad} is not a codeloop run store" in capsys.readouterr().err
        assert main([*argv, "--store", "none", "--session", "s"]) == 2
        assert "--session needs a run store" in capsys.readouterr().err
        assert server.requests == []
