"""`codeloop eval` and `run_eval`: suites load from anywhere (or fail naming the file and task), every run is
scored by its checker and recorded, and a run stopped by Ctrl-C continues where it stopped when run again.

The model is always scripted: `reference_replies` answers each task with its reference solution, through the real
agents, executors and tools.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from codeloop.evals import (
    NumberAnswer,
    SuiteError,
    ToolTask,
    load_suite,
    run_eval,
    summarize,
    tool_tasks,
    write_plot,
)
from codeloop.evals.scripted import reference_replies
from codeloop.testing import ScriptedLLMServer, ScriptedModel, ScriptRequest

TOOLS_SUITE = '''
from codeloop.tools import tool
from codeloop.evals import NumberAnswer, ToolTask

@tool
def get_price(item: str) -> float:
    """The price of an item.

    Args:
        item: The item's name.
    """
    return {"pen": 2.5, "ink": 4.0}[item]

@tool
def get_tax_percent(country: str) -> float:
    """The sales tax of a country in percent.

    Args:
        country: The country's name.
    """
    return {"Oria": 10.0}[country]

TOOLS = (get_price, get_tax_percent)
'''


def _suite_file(path: Path, body: str) -> Path:
    path.write_text(TOOLS_SUITE + textwrap.dedent(body))
    return path


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    return subprocess.run(
        [sys.executable, "-m", "codeloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- loading suites ------------------------------------------------------------------------------------------------


def test_builtin_file_folder_and_module_suites_load_their_tasks(tmp_path: Path) -> None:
    assert [t.name for t in load_suite("builtin")] == [t.name for t in tool_tasks()]
    assert [t.name for t in load_suite("codeloop.evals.suite_trading")][:1] == ["fifo_realized_profit"]
    one = _suite_file(tmp_path / "one.py", """
        TASKS = [ToolTask("pen_with_tax", "lookup", "What does a pen cost with Oria's tax?", TOOLS,
                          NumberAnswer(2.75), "answer = get_price('pen') * (1 + get_tax_percent('Oria') / 100)")]
    """)  # fmt: skip
    assert [t.name for t in load_suite(str(one))] == ["pen_with_tax"]
    folder = tmp_path / "suite"
    folder.mkdir()
    _suite_file(folder / "b.py", """
        def tasks():
            return [ToolTask("ink", "lookup", "Price of ink?", TOOLS, NumberAnswer(4.0), "answer = get_price('ink')")]
    """)  # fmt: skip
    (folder / "a.py").write_text(one.read_text())
    (folder / "_helpers.py").write_text("raise RuntimeError('a helper is not a suite')")
    assert [t.name for t in load_suite(str(folder))] == ["pen_with_tax", "ink"]


def test_a_suite_with_a_syntax_error_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("x = 1\nTASKS = [\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(str(bad))
    assert "broken.py" in str(caught.value) and "syntax error at line" in str(caught.value)


def test_a_task_without_a_checker_is_refused_naming_the_file_and_the_task(tmp_path: Path) -> None:
    path = _suite_file(tmp_path / "nocheck.py", """
        TASKS = [ToolTask("unchecked", "lookup", "Price of ink?", TOOLS, None, "answer = get_price('ink')")]
    """)  # fmt: skip
    with pytest.raises(SuiteError) as caught:
        load_suite(str(path))
    assert "nocheck.py" in str(caught.value) and "'unchecked' has no checker" in str(caught.value)


def test_a_task_name_used_in_two_files_of_a_folder_names_both_files(tmp_path: Path) -> None:
    body = """
        TASKS = [ToolTask("ink", "lookup", "Price of ink?", TOOLS, NumberAnswer(4.0), "answer = get_price('ink')")]
    """
    _suite_file(tmp_path / "first.py", body)
    _suite_file(tmp_path / "second.py", body)
    with pytest.raises(SuiteError) as caught:
        load_suite(str(tmp_path))
    assert (
        "first.py" in str(caught.value) and "second.py" in str(caught.value) and "'ink'" in str(caught.value)
    )


def test_a_module_without_tasks_and_an_unknown_suite_are_refused_with_what_to_give() -> None:
    with pytest.raises(SuiteError, match="defines no TASKS"):
        load_suite("codeloop.evals.tasks")
    with pytest.raises(SuiteError, match="no module named 'no_such_suite_module'"):
        load_suite("no_such_suite_module")
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite("missing/suite.py")


# --- scoring and recording ---------------------------------------------------------------------------------------


def test_every_builtin_task_is_solved_by_both_agents_with_a_scripted_model(tmp_path: Path) -> None:
    tasks = tool_tasks()
    out = tmp_path / "eval.jsonl"
    records = run_eval(
        tasks, ScriptedModel(reference_replies(tasks)), executor="local", output=out, concurrency=8
    )
    assert len(records) == 2 * len(tasks) == len(_records(out))
    failed = [(r["key"], r["error_kind"], r["error"]) for r in records if not r["success"]]
    assert failed == []
    first = records[0]
    assert first["key"] == f"{tasks[0].name}/code/0" and first["agent"] == "code" and first["repeat"] == 0
    assert first["category"] == tasks[0].category and first["steps"] == 1 and first["input_tokens"] > 0
    assert first["output_tokens"] > 0 and first["seconds"] > 0 and first["state"] == "success"
    rows = summarize(records)
    assert [(r.agent, r.solved, r.runs) for r in rows] == [("code", 40, 40), ("tool-calling", 40, 40)]


def test_a_wrong_answer_and_a_raising_checker_are_scored_and_the_other_runs_go_on(tmp_path: Path) -> None:
    class Explodes(NumberAnswer):
        def accepts(self, answer: Any) -> bool:
            raise ZeroDivisionError("checker bug")

    right, other = tool_tasks(["portfolio_value", "route_miles"])
    broken = ToolTask(
        "broken_check", "lookup", "Broken checker task?", right.tools, Explodes(1.0), "answer = 1"
    )

    def reply(request: ScriptRequest) -> Any:
        text = "\n".join(str(m.content) for m in request.messages)
        value = 5283.10 if right.question in text else 1.0  # route_miles gets a wrong number
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": value}}]}

    records = run_eval([right, broken, other], ScriptedModel(reply), agents=["tool-calling"], repeat=2)
    kinds = {(r["task"], r["repeat"]): (r["success"], r["error_kind"]) for r in records}
    assert kinds == {
        ("portfolio_value", 0): (True, None), ("portfolio_value", 1): (True, None),
        ("broken_check", 0): (False, "checker_error"), ("broken_check", 1): (False, "checker_error"),
        ("route_miles", 0): (False, "wrong_answer"), ("route_miles", 1): (False, "wrong_answer"),
    }  # fmt: skip
    assert "ZeroDivisionError: checker bug" in next(
        r["error"] for r in records if r["task"] == "broken_check"
    )


def test_bad_eval_options_are_refused_before_any_run() -> None:
    task = tool_tasks(["portfolio_value"])[0]
    calls: list[int] = []
    model = ScriptedModel(lambda request: calls.append(1) or "x")
    with pytest.raises(ValueError, match="unknown agent"):
        run_eval([task], model, agents=["json"])
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        run_eval([task], model, repeat=0)
    assert calls == []


def test_the_plot_is_a_png_and_without_matplotlib_a_note_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        {"agent": "code", "success": True, "input_tokens": 900, "output_tokens": 100, "steps": 2},
        {"agent": "tool-calling", "success": False, "input_tokens": 1500, "output_tokens": 80, "steps": 4},
    ]
    png = tmp_path / "plot.png"
    assert write_plot(summarize(records), png, title="t") is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    why = write_plot(summarize(records), tmp_path / "none.png")
    assert why is not None and "matplotlib is not installed" in why and not (tmp_path / "none.png").exists()


# --- the command line --------------------------------------------------------------------------------------------


def test_codeloop_eval_on_a_scripted_server_prints_the_table_and_writes_records_and_plot(
    tmp_path: Path,
) -> None:
    tasks = tool_tasks()
    out = tmp_path / "results.jsonl"
    with ScriptedLLMServer(reference_replies(tasks)) as server:
        done = _cli("eval", "builtin", "--model", "openai:scripted", "--api-base", server.base_url, "--api-key",
                    "k", "--executor", "local", "--concurrency", "8", "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "code" in done.stdout and "40/40" in done.stdout and "tool-calling" in done.stdout, done.stdout
    records = _records(out)
    assert len(records) == 80 and all(r["success"] for r in records)
    assert records[0]["config"] == {"model": "openai:scripted", "executor": "local", "max_steps": 8}
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_codeloop_eval_refuses_a_broken_suite_and_a_results_file_of_another_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad_suite.py"
    bad.write_text("TASKS = [\n")
    done = _cli("eval", str(bad), "--model", "openai:x", "--api-key", "k")
    assert done.returncode == 2 and "bad_suite.py" in done.stderr and "syntax error" in done.stderr
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"key": "portfolio_value/code/0", "config": {"model": "openai:other"}}) + "\n")
    done = _cli("eval", "builtin", "--model", "openai:x", "--api-key", "k", "--output", str(out))
    assert done.returncode == 2 and "other settings" in done.stderr and "openai:other" in done.stderr


def test_ctrl_c_then_the_same_command_finishes_the_eval_with_no_run_lost_or_repeated(tmp_path: Path) -> None:
    tasks = tool_tasks()[:12]
    solve = reference_replies(tasks)
    started: dict[str, int] = {}
    lock = threading.Lock()
    # Runs after the first five wait here until Ctrl-C has been sent: however slowly this test's loop gets to
    # it on a loaded machine, the eval cannot have finished meanwhile.
    interrupted = threading.Event()

    def slow(request: ScriptRequest) -> Any:
        if not any(m.role == "assistant" for m in request.messages):  # a run's first call: the run started
            agent = "tool-calling" if request.tools else "code"
            text = "\n".join(str(m.content) for m in request.messages)
            name = next(t.name for t in tasks if t.question in text)
            with lock:
                started[f"{name}/{agent}"] = started.get(f"{name}/{agent}", 0) + 1
                held = sum(started.values()) > 5 and not interrupted.is_set()
            if held:
                interrupted.wait(120)
        time.sleep(0.15)
        return solve(request)

    out = tmp_path / "r.jsonl"
    names = ",".join(t.name for t in tasks)
    with ScriptedLLMServer(slow) as server:
        args = ["eval", "builtin", "--tasks", names, "--model", "openai:s", "--api-base", server.base_url,
                "--api-key", "k", "--executor", "local", "--concurrency", "2", "--output", str(out), "--no-plot"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
        process = subprocess.Popen([sys.executable, "-m", "codeloop.cli", *args], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 5):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            with lock:
                started.clear()
                interrupted.set()
        assert process.returncode == 130, stderr
        first = [r["key"] for r in _records(out)]
        assert (
            f"{len(first)} of 24 runs are recorded in {out}; run the same command again to continue" in stderr
        )
        assert 5 <= len(first) < 24
        again = _cli(*args)
    assert again.returncode == 0, again.stderr
    keys = [r["key"] for r in _records(out)]
    assert len(keys) == len(set(keys)) == 24  # none lost, none recorded twice
    rerun = {f"{key.split('/')[0]}/{key.split('/')[1]}" for key in first} & set(started)
    assert rerun == set()  # a run recorded before Ctrl-C did not run again
    assert sum(started.values()) == 24 - len(first)


def test_sinks_receive_every_record_and_agent_options_reach_every_agent() -> None:
    from codeloop import events as ev

    tasks = tool_tasks(["portfolio_value", "densest_country"])
    finished: list[str] = []
    lock = threading.Lock()

    def listen(event: ev.Event) -> None:
        if isinstance(event, ev.RunFinished):
            with lock:
                finished.append(event.result.run_id)

    class Sink:
        def __init__(self) -> None:
            self.records: list[dict[str, Any]] = []

        def record(self, record: dict[str, Any]) -> None:
            self.records.append(record)

    sink = Sink()
    records = run_eval(
        tasks, ScriptedModel(reference_replies(tasks)), executor="local", sinks=[sink],
        agent_options={"listeners": [listen]},
    )  # fmt: skip
    assert sorted(r["key"] for r in sink.records) == sorted(r["key"] for r in records) and len(records) == 4
    assert sorted(finished) == sorted(r["run_id"] for r in records)  # each record names its run


@pytest.mark.timeout(600)
def test_codeloop_eval_records_its_runs_and_scores_in_the_store_under_its_label(tmp_path: Path) -> None:
    from codeloop.store import open_store
    from codeloop.store.jobs import job_record

    tasks = tool_tasks()[:3]
    out, db = tmp_path / "results.jsonl", tmp_path / "runs.db"
    with ScriptedLLMServer(reference_replies(tasks)) as server:
        done = _cli("eval", "builtin", "--tasks", ",".join(t.name for t in tasks), "--agent", "code",
                    "--model", "openai:scripted", "--api-base", server.base_url, "--api-key", "k",
                    "--executor", "local", "--output", str(out), "--no-plot", "--no-progress",
                    "--store", f"sqlite:///{db}", "--label", "eval:nightly")  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = _records(out)
    store = open_store(db)
    assert store is not None
    runs = store.list_runs(label="eval:nightly")
    assert sorted(r.run_id for r in runs) == sorted(r["run_id"] for r in records) and len(runs) == 3
    for record in records:
        kept = job_record(store, record["run_id"])
        assert kept is not None and kept["success"] is True and kept["task"] == record["task"]
