"""Durable resume under SIGKILL: a real process running a scripted 10-step CodeAgent run is killed at every effect
boundary (right after each journal append), and another process resumes the run each time.

The resumed run must end with the uninterrupted run's answer, every tool side effect must have happened exactly
once (the kills fall between journal appends, so no call is ever half done), and the model must have been asked
exactly as often as in the uninterrupted run: nothing completed is done again. Children are forked from a
forkserver that has already imported codeloop, so each case costs a fork, not an interpreter start.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
from pathlib import Path
from typing import Any

import pytest
from tests import resume_child
from tests.sandbox_support import needs_bwrap

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["tests.resume_child", "codeloop.executors.local", "codeloop.durable"])


def _child(
    folder: Path, argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | None]:
    out = folder / "outcome.json"
    out.unlink(missing_ok=True)
    process = _context.Process(target=resume_child.main, args=(argv, env or {}, str(out)))
    process.start()
    process.join(300)
    if process.is_alive():
        process.kill()
        pytest.fail(f"child {argv} hung")
    return process.exitcode or 0, json.loads(out.read_text()) if out.exists() else None


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _journal_run_id(folder: Path) -> str:
    (path,) = (folder / "journal").glob("*.jsonl")
    return path.stem


def _baseline(tmp_path: Path, executor: str) -> tuple[dict[str, Any], list[str], int, int]:
    folder = tmp_path / "baseline"
    folder.mkdir()
    code, outcome = _child(folder, ["run", str(folder), executor])
    assert code == 0 and outcome is not None and outcome["state"] == "success", outcome
    appends = len(_lines(folder / "journal" / f"{outcome['run_id']}.jsonl"))
    return outcome, _lines(folder / "deposits.log"), len(_lines(folder / "model.log")), appends


def _kill_everywhere(tmp_path: Path, executor: str) -> int:
    baseline, deposits, model_calls, appends = _baseline(tmp_path, executor)
    assert baseline["answer"] == {"balance": 450, "history": [10, 20, 30, 40, 50, 60, 70, 80, 90]}
    for kill_after in range(1, appends):
        folder = tmp_path / f"kill{kill_after}"
        folder.mkdir()
        code, outcome = _child(
            folder, ["run", str(folder), executor], {"KILL_AFTER_APPENDS": str(kill_after)}
        )
        assert code == -signal.SIGKILL and outcome is None, (
            f"the run was not killed after append {kill_after}"
        )
        run_id = _journal_run_id(folder)
        code, outcome = _child(folder, ["resume", str(folder), executor, run_id])
        where = f"killed after journal append {kill_after} of {appends}"
        assert code == 0 and outcome is not None, where
        assert (outcome["state"], outcome["answer"]) == ("success", baseline["answer"]), where
        assert outcome["run_id"] == run_id, where
        assert _lines(folder / "deposits.log") == deposits, f"{where}: a tool call ran twice or not at all"
        assert len(_lines(folder / "model.log")) == model_calls, (
            f"{where}: a completed model call was repeated"
        )
    return appends


@pytest.mark.timeout(1200)  # about 130 processes
def test_local_run_killed_at_every_effect_boundary_resumes_to_the_same_answer(tmp_path: Path) -> None:
    assert (
        _kill_everywhere(tmp_path, "local") > 50
    )  # every step's model call, code and tool call were boundaries


@needs_bwrap
@pytest.mark.timeout(1800)
def test_sandbox_run_killed_at_every_effect_boundary_resumes_to_the_same_answer(tmp_path: Path) -> None:
    assert _kill_everywhere(tmp_path, "sandbox") > 50


def test_kill_inside_an_idempotent_tool_repeats_only_that_call(tmp_path: Path) -> None:
    baseline, deposits, _, _ = _baseline(tmp_path, "local")
    folder = tmp_path / "in_tool"
    folder.mkdir()
    code, _ = _child(folder, ["run", str(folder), "local"], {"KILL_IN_TOOL": "4"})
    assert code == -signal.SIGKILL
    assert (
        _lines(folder / "deposits.log") == deposits[:4]
    )  # the 4th deposit happened, its result was not journaled
    code, outcome = _child(folder, ["resume", str(folder), "local", _journal_run_id(folder)])
    assert code == 0 and outcome is not None and outcome["answer"] == baseline["answer"]
    # deposit is idempotent: the in-flight call ran again (once), the three completed ones did not
    assert _lines(folder / "deposits.log") == deposits[:4] + deposits[3:]


def test_in_flight_call_of_a_non_idempotent_tool_is_not_repeated_and_the_model_is_told(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "email"
    folder.mkdir()
    env = {"EMAIL_STEP": "1"}
    code, outcome = _child(folder, ["run", str(folder), "local"], env)
    assert code == 0 and outcome is not None
    journal = [json.loads(line) for line in _lines(folder / "journal" / f"{outcome['run_id']}.jsonl")]
    started = next(
        i for i, e in enumerate(journal) if e["kind"] == "tool_in_code" and "email" in _tool_of(journal, e)
    )
    shutil_folder = tmp_path / "email_killed"
    shutil_folder.mkdir()
    code, _ = _child(
        shutil_folder, ["run", str(shutil_folder), "local"], {**env, "KILL_AFTER_APPENDS": str(started + 1)}
    )
    assert code == -signal.SIGKILL
    assert _lines(shutil_folder / "emails.log") == []  # killed right after "started": the email was not sent
    code, outcome = _child(
        shutil_folder, ["resume", str(shutil_folder), "local", _journal_run_id(shutil_folder)], env
    )
    assert code == 0 and outcome is not None
    assert (
        outcome["answer"] == "unsure"
    )  # the scripted model answers so only when told the call may have happened
    assert _lines(shutil_folder / "emails.log") == []  # and the call was not repeated blindly


def _tool_of(journal: list[dict[str, Any]], entry: dict[str, Any]) -> str:
    """Which tool a tool_in_code entry called: the deposit tool's results are numbers, send_email's a text."""
    done = [e for e in journal if e["seq"] == entry["seq"] and e["status"] == "done"]
    return "email" if done and isinstance(done[0]["result"], str) else "deposit"
