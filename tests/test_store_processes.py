"""The run store under real processes: many writers at once, a file size limit, SIGKILL, sessions via the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codeloop.store.sqlite import SQLiteStore
from codeloop.testing.server import ScriptedLLMServer

SRC = str(Path(__file__).resolve().parents[1] / "src")


def python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


WRITER = """
    import os, sys, time
    from pathlib import Path
    from codeloop import CodeAgent
    from codeloop.testing import ScriptedModel

    db, go, runs, name = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    code = lambda s: f"```python\\n{s}\\n```"
    agent = CodeAgent(tools=[], model=ScriptedModel([]), executor="local", verbosity_level=0, store=db)
    print("ready", flush=True)
    while not go.exists():  # every writer starts at once
        time.sleep(0.005)
    for i in range(runs):
        agent.model = ScriptedModel([code(f"print('{name}-{i}' * 300)"), code("x = 1"), code(f"final_answer('{name}-{i}')")])
        assert agent.run(f"{name} run {i}") == f"{name}-{i}"
    print("ok")
"""


def test_many_processes_writing_one_store_at_once_lose_nothing(tmp_path: Path) -> None:
    db, go = tmp_path / "runs.db", tmp_path / "go"
    SQLiteStore(db).close()
    writers, runs = 8, 6
    procs = [python(WRITER, str(db), str(go), str(runs), f"w{n}") for n in range(writers)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "ok", err
    store = SQLiteStore(db)
    recorded = store.list_runs(limit=1000)
    assert len(recorded) == writers * runs
    assert {r.output for r in recorded} == {f"w{n}-{i}" for n in range(writers) for i in range(runs)}
    for run in recorded:
        assert run.state == "success" and run.step_count == 3
        steps = store.steps(run.run_id)
        assert [s["type"] for s in steps] == ["task", "action", "action", "action", "final_answer"]
        assert steps[1]["observations"].startswith(f"{run.output}{run.output}")
        assert [e.type for e in store.events(run.run_id)].count("StepFinished") == 3


FILE_SIZE_LIMITED = """
    import random, resource, signal, sys
    from codeloop import CodeAgent
    from codeloop.store.sqlite import SQLiteStore
    from codeloop.testing import ScriptedModel

    db = sys.argv[1]
    SQLiteStore(db).close()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    noise = "".join(random.Random(0).choice("abcdefghij") for _ in range(300_000))
    code = lambda s: f"```python\\n{s}\\n```"
    script = [code("print('small')"), code(f"# {noise}\\nprint(2)"), code("print(3)"), code("final_answer(1)")]
    model = ScriptedModel(lambda request: script[request.index])
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, store=db)
    result = agent.run("fill the file", return_full_result=True)
    print(result.state, len(model.requests), result.run_id)
    print(result.error)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_while_writing_stops_the_run_as_an_error(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = python(FILE_SIZE_LIMITED, str(db))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    first, error = out.strip().splitlines()
    state, calls, run_id = first.split()
    assert (state, calls) == ("error", "2") and "is full" in error and str(db) in error
    store = SQLiteStore(db)
    steps = store.steps(run_id)
    assert [s["type"] for s in steps][:2] == ["task", "action"] and "small" in steps[1]["observations"]
    # the reply that hit the limit is not kept: step 2 is at most a failed step without it (its journal write failed)
    assert len(steps) == 2 or (steps[2]["type"] == "action" and steps[2]["model_output"] is None)


KILLED = """
    import sys, time
    from codeloop import CodeAgent
    from codeloop.testing import ScriptedModel

    code = lambda s: f"```python\\n{s}\\n```"
    def script(request):
        if request.index == 3:
            print("step 4 asked", flush=True)
            time.sleep(600)  # the model hangs: the test kills us here
        return code(f"print('done step {request.index + 1}')")
    agent = CodeAgent(tools=[], model=ScriptedModel(script), executor="local", verbosity_level=0, store=sys.argv[1])
    agent.run("ten steps", max_steps=10)
"""


def test_a_run_killed_with_sigkill_keeps_every_completed_step(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = python(KILLED, str(db))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "step 4 asked"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = SQLiteStore(db)
    [run] = store.list_runs()
    # never finished, and its process is gone: not "running" forever, but abandoned (and resumable)
    assert run.state == "abandoned" and run.task == "ten steps"
    assert f"pid {proc.pid} " in (run.error or "")
    steps = store.steps(run.run_id)
    assert [s["type"] for s in steps] == ["task", "action", "action", "action"]
    assert [s["observations"].strip() for s in steps[1:]] == [f"done step {n}" for n in (1, 2, 3)]
    finished = [e.data["step_number"] for e in store.events(run.run_id) if e.type == "StepFinished"]
    assert finished == [1, 2, 3]  # step 4's events were not flushed with a step: nothing half-written


def runs_cli(spec: str, *args: str) -> list[dict[str, object]]:
    """`codeloop runs list --json` in a process of its own: the rows it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "codeloop.cli", "runs", "--store", spec, "list", "--json", *args],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def check_a_killed_run_shows_abandoned_and_resumes(spec: str) -> None:
    """A run whose process is killed (SIGKILL) is listed "running" while it lives, "abandoned" once it is gone,
    and resuming it (another process: this one) ends it with success. Shared by SQLite and PostgreSQL."""
    from codeloop import CodeAgent
    from codeloop.store import open_store
    from codeloop.testing import ScriptedModel

    proc = python(KILLED, spec)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "step 4 asked"
        [alive] = runs_cli(spec)
        assert alive["state"] == "running"  # its process lives: not settled
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    [dead] = runs_cli(spec)
    assert dead["state"] == "abandoned" and f"pid {proc.pid} " in str(dead["error"])
    assert [r["run_id"] for r in runs_cli(spec, "--state", "abandoned")] == [dead["run_id"]]
    agent = CodeAgent(
        tools=[], model=ScriptedModel(["```python\nfinal_answer('resumed')\n```"]), executor="local",
        verbosity_level=0, store=spec,
    )  # fmt: skip
    with agent:
        result = agent.resume(str(dead["run_id"]), return_full_result=True)
    assert (result.state, result.output) == ("success", "resumed")
    store = open_store(spec)
    assert store is not None
    run = store.get_run(str(dead["run_id"]))
    assert (run.state, run.error, run.output) == ("success", None, "resumed")
    assert [s["observations"].strip() for s in store.steps(run.run_id)[1:4]] == [
        f"done step {n}" for n in (1, 2, 3)
    ]  # the three steps done before the kill were kept, not redone
    assert runs_cli(spec, "--state", "abandoned") == []


def test_a_killed_run_shows_abandoned_not_running_and_resumes(tmp_path: Path) -> None:
    check_a_killed_run_shows_abandoned_and_resumes(str(tmp_path / "runs.db"))


def test_a_session_continues_across_processes_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    replies = ["```python\nfinal_answer('the number is 41')\n```", "```python\nfinal_answer(42)\n```"]
    env = {**os.environ, "PYTHONPATH": SRC}
    outputs = []
    with ScriptedLLMServer(replies) as server:
        for task in ("remember the number 41", "add one to the number"):
            done = subprocess.run(
                [sys.executable, "-m", "codeloop.cli", "run", task, "--model", "openai:gpt-4o",
                 "--api-base", server.base_url, "--api-key", "k", "--executor", "local",
                 "--store", str(db), "--session", "user-42", "--json"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            outputs.append(json.loads(done.stdout))
        second_request = json.dumps(server.requests[1])
    assert "remember the number 41" in second_request and "the number is 41" in second_request
    assert [o["state"] for o in outputs] == ["success", "success"] and outputs[1]["output"] == 42
    store = SQLiteStore(db)
    assert [r.run_id for r in store.list_runs(session="user-42")] == [
        outputs[1]["run_id"],
        outputs[0]["run_id"],
    ]
