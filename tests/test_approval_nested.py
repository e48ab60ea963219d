"""Nested approval: a managed agent's call that needs approval pauses its (CodeAgent) manager too.

The agents are tests/nested_approval_child.py's: the manager's code reads a file (call 1.1), then gives its managed
agent "cleaner" a task (call 1.2); the cleaner makes three parallel calls, read_file (no approval) and two
delete_file calls that need approval (d1, d2). Every real tool and model call is logged to files, so the tests
count them across processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.nested_approval_child import build

from codeloop.approval import PendingCall

ANSWER = "contents of m | Here is the final answer from your managed agent 'cleaner':\n"
MODEL_CALLS = {
    "code": ["cleaner after 0 results", "cleaner after 3 results", "manager after 2 messages"],
    "tool-calling": ["cleaner after 0 results", "cleaner after 3 results", "manager after 0 results",
                     "manager after 2 results"],
}  # fmt: skip
FIRST = {"code": "1.2", "tool-calling": "k1"}
"""The manager's call to the cleaner: a CodeAgent's second call of step 1, or the model's tool-call id."""
ALL_APPROVED = ANSWER + "contents of a; deleted b; deleted c"


@pytest.fixture(params=["code", "tool-calling"])
def kind(request: pytest.FixtureRequest) -> str:
    """The manager: a CodeAgent (its snippet goes on at the call) or a ToolCallingAgent."""
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where both agents record (and journal) their runs: an SQLite file, or a database on a real PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


def lines(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().splitlines() if path.exists() else []


def uninterrupted(tmp_path: Path, kind: str = "code") -> str:
    """The answer of the same run when no call needs approval."""
    folder = tmp_path / "plain"
    folder.mkdir()
    with build(f"sqlite:///{folder / 'runs.db'}", folder, ask=False, kind=kind) as agent:
        return str(agent.run("Tidy up."))


def test_the_manager_pauses_with_its_managed_agent_and_one_decision_each_resumes_both(
    kind: str, tmp_path: Path
) -> None:
    store, first = f"sqlite:///{tmp_path / 'runs.db'}", FIRST[kind]
    with build(store, tmp_path, kind=kind) as manager:
        paused = manager.run("Tidy up.", return_full_result=True)
        # The parent lists the child's calls, named through the manager's call to the child.
        assert paused.state == "awaiting_approval"
        assert [(p.call_id, p.tool, p.arguments) for p in paused.pending] == [
            (f"{first}/d1", "delete_file", {"path": "b"}),
            (f"{first}/d2", "delete_file", {"path": "c"}),
        ]
        assert all("managed agent 'cleaner'" in p.reason for p in paused.pending)
        assert manager.store is not None
        parent = manager.store.get_run(paused.run_id)
        children = [r for r in manager.store.list_runs(limit=10) if r.parent_run_id == paused.run_id]
        assert parent is not None and parent.state == "awaiting_approval"
        assert [c.state for c in children] == ["awaiting_approval"]
        # the calls needing no decision ran, once
        assert sorted(lines(tmp_path, "tools.log")) == ["read a", "read m"]

    # One decision (a new agent, as in another process): the cleaner's d1 runs, the run pauses again on d2.
    with build(store, tmp_path, kind=kind) as manager:
        again = manager.resume(paused.run_id, approvals={f"{first}/d1": True}, return_full_result=True)
    assert again.state == "awaiting_approval" and again.run_id == paused.run_id
    assert again.pending == [
        PendingCall(f"{first}/d2", "delete_file", {"path": "c"}, again.pending[0].reason)
    ]
    with build(store, tmp_path, kind=kind) as manager:
        done = manager.resume(paused.run_id, approvals={f"{first}/d2": True}, return_full_result=True)
    assert done.state == "success"
    # Every tool ran exactly once over the three runs of the agents, every model call was made once.
    assert sorted(lines(tmp_path, "tools.log")) == ["delete b", "delete c", "read a", "read m"]
    assert sorted(lines(tmp_path, "model.log")) == MODEL_CALLS[kind]
    assert done.output == uninterrupted(tmp_path, kind) == ALL_APPROVED
    assert manager.store is not None
    assert manager.store.get_run(children[0].run_id).state == "success"  # type: ignore[union-attr]


def test_a_denied_nested_call_is_shown_to_the_managed_agent_and_not_run(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with build(store, tmp_path) as manager:
        paused = manager.run("Tidy up.", return_full_result=True)
        done = manager.resume(
            paused.run_id, approvals={"1.2/d1": True, "1.2/d2": "c is still needed"}, return_full_result=True
        )
    assert done.state == "success"
    assert done.output == ANSWER + "contents of a; deleted b; denied: c is still needed"
    assert lines(tmp_path, "tools.log") == ["read m", "read a", "delete b"]


def test_an_unknown_nested_call_id_is_refused_listing_the_pending_ones(tmp_path: Path) -> None:
    with build(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path) as manager:
        paused = manager.run("Tidy up.", return_full_result=True)
        with pytest.raises(ValueError, match=r"unknown call id d1 .*1\.2/d1: delete_file"):
            manager.resume(paused.run_id, approvals={"d1": True})


def _process(
    store: str, folder: Path, kind: str, *args: str, hang: bool = False
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "tests.nested_approval_child",
        args[0],
        store,
        str(folder),
        kind,
        *args[1:],
    ]
    proc = subprocess.Popen(
        [*command, *(["--hang"] if hang else [])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=60)
        raise AssertionError(proc.stderr.read() if proc.stderr else "no output")
    return proc, dict(json.loads(line))


def test_a_manager_killed_while_paused_is_decided_and_finished_from_another_process(
    store: str, kind: str, tmp_path: Path
) -> None:
    first, paused = _process(store, tmp_path, kind, "run", hang=True)
    call = FIRST[kind]
    try:
        assert paused["state"] == "awaiting_approval"
        assert [p["call_id"] for p in paused["pending"]] == [f"{call}/d1", f"{call}/d2"]
    finally:
        os.kill(first.pid, signal.SIGKILL)  # a crash while paused: nothing gets to clean up
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    decisions = json.dumps({f"{call}/d1": True, f"{call}/d2": True})
    second, done = _process(store, tmp_path, kind, "resume", paused["run_id"], decisions)
    second.wait(timeout=120)
    assert done["state"] == "success" and done["run_id"] == paused["run_id"]
    assert done["answer"] == uninterrupted(tmp_path, kind)
    assert sorted(lines(tmp_path, "tools.log")) == ["delete b", "delete c", "read a", "read m"]
    assert sorted(lines(tmp_path, "model.log")) == MODEL_CALLS[kind]
