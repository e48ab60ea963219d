"""`codeloop batch` and `run_batch`: a tasks file is checked line by line before anything runs, every run is
recorded as it ends, a crash or Ctrl-C then the same command finishes the batch with no task run twice, and a
thousand scripted runs at once in one process all succeed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent
from codeloop.batch import BatchTask, TasksFileError, read_tasks_file, run_batch
from codeloop.jobs import ResultsFileError
from codeloop.testing import ScriptedLLMServer, ScriptedModel, ScriptRequest

THREE_STEPS = [
    "Thought: start.\n```python\nx = 1\nprint(x)\n```",
    "Thought: add.\n```python\nx += 1\nprint(x)\n```",
    "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
]
SRC = str(Path(__file__).resolve().parent.parent / "src")


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "codeloop.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC}


def _tasks_file(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"t{i}", "task": f"Compute task number {i}."}) + "\n" for i in range(n))
    )
    return path


def _number_in(request: ScriptRequest) -> int:
    text = "\n".join(str(m.content) for m in request.messages)
    return int(text.split("Compute task number ")[1].split(".")[0])


def test_a_thousand_concurrent_scripted_three_step_runs_on_local_executor_all_succeed() -> None:
    tasks = [{"id": i, "task": "Compute 20."} for i in range(1000)]
    records = run_batch(
        lambda: CodeAgent(model=ScriptedModel(list(THREE_STEPS)), executor="local", verbosity_level=0),
        tasks,
        concurrency=1000,
    )
    failures = [r for r in records if not r["success"] or r["output"] != 20 or r["steps"] != 3]
    assert len(records) == 1000 and failures == []
    assert [r["id"] for r in records] == [str(i) for i in range(1000)]


def test_records_are_kept_in_task_order_with_usage_time_and_metadata() -> None:
    records = run_batch(
        lambda: CodeAgent(model=ScriptedModel(list(THREE_STEPS)), executor="local", verbosity_level=0),
        [BatchTask("a", "Compute 20.", metadata={"expected": 20}), {"id": "b", "task": "Compute 20 again."}],
    )
    assert [r["id"] for r in records] == ["a", "b"] and records[0]["metadata"] == {"expected": 20}
    assert "metadata" not in records[1]
    first = records[0]
    assert first["state"] == "success" and first["error_kind"] is None and first["run_id"]
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0 and first["seconds"] > 0


def test_a_run_that_raises_or_fails_is_recorded_and_the_batch_goes_on() -> None:
    def make() -> Any:
        return ToolCallingAgent([], ScriptedModel(reply), verbosity_level=0, max_steps=2)

    def reply(request: ScriptRequest) -> Any:
        text = "\n".join(str(m.content) for m in request.messages)
        if "loop" in text:  # never answers: the run ends at max_steps
            return {"tool_calls": [{"name": "no_such_tool", "arguments": {}}]}
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "ok"}}]}

    built = []

    def factory() -> Any:
        built.append(1)
        if len(built) == 2:
            raise RuntimeError("could not build this agent")
        return make()

    records = run_batch(
        factory, [{"id": i, "task": t} for i, t in enumerate(["fine", "boom", "loop", "fine"])]
    )
    assert [(r["success"], r["error_kind"]) for r in records] == [
        (True, None), (False, "exception"), (False, "max_steps"), (True, None)
    ]  # fmt: skip
    assert records[1]["error"] == "RuntimeError: could not build this agent"


def test_rerunning_runs_only_the_missing_tasks_and_drops_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return CodeAgent(model=ScriptedModel(list(THREE_STEPS)), executor="local", verbosity_level=0)

    tasks = [{"id": f"t{i}", "task": "Compute 20."} for i in range(6)]
    run_batch(factory, tasks[:4], output=out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:40])  # the 4th record was being written when we crashed
    made.clear()
    records = run_batch(factory, tasks, output=out)
    assert len(made) == 3  # t3 (cut short), t4, t5: nothing recorded ran again
    assert [r["id"] for r in records] == [f"t{i}" for i in range(6)]
    assert sorted(r["id"] for r in _records(out)) == [f"t{i}" for i in range(6)]


def test_a_results_file_edited_in_the_middle_or_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"key": "a", "config": {}}\nnot json\n{"key": "b", "config": {}}\n')
    factory = lambda: CodeAgent(model=ScriptedModel(list(THREE_STEPS)), executor="local")  # noqa: E731
    with pytest.raises(ResultsFileError, match="line 2 is not a run record"):
        run_batch(factory, [{"id": "a", "task": "x"}], output=out)
    out.write_text('{"key": "a", "config": {"model": "m1"}}\n')
    with pytest.raises(ResultsFileError, match="other settings.*'m1' there, 'm2' now"):
        run_batch(factory, [{"id": "a", "task": "x"}], output=out, config={"model": "m2"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": 1, "task": "a"}\n{"id": 2, "task": "b"\n', "line 2: not valid JSON"),
        ('{"id": 1, "task": "a"}\n\n{"id": 2}\n', "line 3: missing 'task'"),
        ('{"id": "x", "task": "a"}\n{"id": "x", "task": "b"}\n', "line 2: id 'x' was already used on line 1"),
        ('{"id": 1, "task": "a", "prompt": "b"}\n', "line 1: unknown key(s) prompt"),
        ('{"id": 1, "task": "  "}\n', "line 1: 'task' must be non-empty text"),
        ('["a", "b"]\n', "line 1: expected an object"),
        ("\n\n", "holds no tasks"),
    ],
)
def test_a_malformed_tasks_file_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(content)
    with pytest.raises(TasksFileError) as caught:
        read_tasks_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_codeloop_batch_refuses_a_malformed_line_before_any_model_call(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": 1, "task": "fine"}\n{"id": 2, "task": }\n')
    with ScriptedLLMServer(lambda request: "never") as server:
        done = subprocess.run(
            _cli_command("batch", str(tasks), "--model", "openai:s", "--api-base", server.base_url, "--api-key", "k"),
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        assert server.requests == []
    assert done.returncode == 2 and "tasks.jsonl line 2: not valid JSON" in done.stderr


def test_codeloop_batch_records_every_task_and_exits_1_when_one_has_no_answer(tmp_path: Path) -> None:
    tasks = _tasks_file(tmp_path / "tasks.jsonl", 5)

    def reply(request: ScriptRequest) -> Any:
        number = _number_in(request)
        if number == 3:  # this run never calls final_answer, so it ends at --max-steps
            return "Thought: I will not answer.\n```python\nprint('thinking')\n```"
        return f"Thought: done.\n```python\nfinal_answer({number} * 2)\n```"

    with ScriptedLLMServer(reply) as server:
        done = subprocess.run(
            _cli_command("batch", str(tasks), "--model", "openai:s", "--api-base", server.base_url, "--api-key",
                         "k", "--executor", "local", "--max-steps", "2", "--concurrency", "3"),
            capture_output=True, text=True, timeout=180, env=_env(),
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "1 run(s) ended without a final answer: t3" in done.stderr
    records = _records(tmp_path / "tasks.results.jsonl")
    assert sorted(r["id"] for r in records) == [f"t{i}" for i in range(5)]
    by_id = {r["id"]: r for r in records}
    assert by_id["t4"]["output"] == 8 and by_id["t3"]["state"] == "max_steps"
    assert by_id["t0"]["config"]["model"] == "openai:s" and by_id["t0"]["config"]["agent"] == "code"
    assert "5/5" not in done.stdout and "4/5" in done.stdout, done.stdout


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["crash", "ctrl_c"])
def test_a_killed_batch_run_again_finishes_with_no_task_lost_or_run_twice(tmp_path: Path, stop: int) -> None:
    tasks = _tasks_file(tmp_path / "tasks.jsonl", 16)
    out = tmp_path / "out.jsonl"
    started: list[int] = []
    lock = threading.Lock()
    # Runs after the first four wait here until the batch has been stopped: however slowly this test's loop
    # gets to the stop on a loaded machine, the batch cannot have finished meanwhile.
    stopped = threading.Event()

    def slow(request: ScriptRequest) -> Any:
        number = _number_in(request)
        if not any(m.role == "assistant" for m in request.messages):
            with lock:
                started.append(number)
                held = len(started) > 4 and not stopped.is_set()
            if held:
                stopped.wait(120)
        time.sleep(0.1)
        if any(m.role == "assistant" for m in request.messages):
            return f"Thought: done.\n```python\nfinal_answer(x + {number})\n```"
        return "Thought: start.\n```python\nx = 100\nprint(x)\n```"

    with ScriptedLLMServer(slow) as server:
        args = ["batch", str(tasks), "--model", "openai:s", "--api-base", server.base_url, "--api-key", "k",
                "--executor", "local", "--concurrency", "2", "--output", str(out)]  # fmt: skip
        process = subprocess.Popen(
            _cli_command(*args), env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 4):
            time.sleep(0.02)
        process.send_signal(stop)
        try:
            process.communicate(timeout=60)
        finally:
            with lock:
                started.clear()
                stopped.set()
        assert process.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL)
        first = {r["id"] for r in _records(out)}
        assert 4 <= len(first) < 16
        again = subprocess.run(_cli_command(*args), capture_output=True, text=True, timeout=180, env=_env())
    assert again.returncode == 0, again.stderr
    records = _records(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 16
    assert all(r["output"] == 100 + int(r["id"][1:]) for r in records)
    assert {f"t{n}" for n in started} & first == set()  # nothing recorded before the stop ran again
    assert len(started) == 16 - len(first)


def test_retry_errors_runs_again_only_the_runs_that_failed_by_an_error(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    broken = {"yes": True}
    built: list[int] = []

    def factory() -> Any:
        built.append(1)
        if broken["yes"] and len(built) == 2:
            raise ConnectionError("model unreachable")
        return ToolCallingAgent([], ScriptedModel(reply), verbosity_level=0, max_steps=1)

    def reply(request: ScriptRequest) -> Any:
        text = "\n".join(str(m.content) for m in request.messages)
        if "loop" in text:
            return {"tool_calls": [{"name": "no_such_tool", "arguments": {}}]}
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "ok"}}]}

    tasks = [{"id": "a", "task": "fine"}, {"id": "b", "task": "fine too"}, {"id": "c", "task": "loop"}]
    first = run_batch(factory, tasks, output=out)
    assert [r["error_kind"] for r in first] == [None, "exception", "max_steps"]
    broken["yes"] = False
    built.clear()
    assert (
        run_batch(factory, tasks, output=out)[1]["error_kind"] == "exception" and built == []
    )  # plain rerun
    again = run_batch(factory, tasks, output=out, retry_errors=True)
    assert len(built) == 1  # only "b": the wrong-answer-like max_steps run is a result and stays
    assert [r["error_kind"] for r in again] == [None, None, "max_steps"]
    assert sorted(r["id"] for r in _records(out)) == ["a", "b", "c"]  # the failed record was replaced


def test_inside_a_running_event_loop_run_batch_says_to_await_arun_batch_which_works() -> None:
    import asyncio

    from codeloop.batch import arun_batch

    def factory() -> Any:
        return CodeAgent(model=ScriptedModel(list(THREE_STEPS)), executor="local", verbosity_level=0)

    async def in_a_notebook() -> list[dict[str, Any]]:
        with pytest.raises(RuntimeError, match="await arun_batch"):
            run_batch(factory, [{"id": 1, "task": "x"}])
        return await arun_batch(factory, [{"id": i, "task": "Compute 20."} for i in range(5)], concurrency=5)

    records = asyncio.run(in_a_notebook())
    assert [r["output"] for r in records] == [20] * 5


@pytest.mark.timeout(600)
def test_codeloop_batch_records_each_run_in_the_store_under_its_label_and_a_rerun_adds_none(
    tmp_path: Path,
) -> None:
    from codeloop.store import open_store
    from codeloop.store.jobs import job_record

    tasks, db = _tasks_file(tmp_path / "tasks.jsonl", 4), tmp_path / "runs.db"

    def reply(request: ScriptRequest) -> Any:
        number = _number_in(request)
        return f"```python\nfinal_answer({number} * 2)\n```"

    args = ["batch", str(tasks), "--model", "openai:s", "--api-key", "k", "--executor", "local",
            "--store", str(db), "--no-progress"]  # fmt: skip
    with ScriptedLLMServer(reply) as server:
        done = subprocess.run(_cli_command(*args, "--api-base", server.base_url),
                              capture_output=True, text=True, timeout=300, env=_env())  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "codeloop runs list --label batch:tasks.results" in done.stderr
        again = subprocess.run(_cli_command(*args, "--api-base", server.base_url),
                               capture_output=True, text=True, timeout=300, env=_env())  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 4  # the rerun resumed a finished batch: nothing ran twice
    records = {r["id"]: r for r in _records(tmp_path / "tasks.results.jsonl")}
    listed = subprocess.run(
        _cli_command("runs", "--store", str(db), "list", "--label", "batch:tasks.results", "--json"),
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["run_id"] for r in rows) == sorted(r["run_id"] for r in records.values())
    assert {r["state"] for r in rows} == {"success"} and {r["label"] for r in rows} == {"batch:tasks.results"}
    store = open_store(db)
    assert store is not None
    for task_id, record in records.items():
        kept = job_record(store, record["run_id"])  # the record (score) is kept with its run
        assert kept is not None and (kept["id"], kept["success"]) == (task_id, True)
        assert kept["output"] == 2 * int(task_id[1:])
    assert store.list_runs(label="batch:other") == []
