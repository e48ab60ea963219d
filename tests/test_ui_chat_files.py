"""The chat's offer of files the code wrote, without a browser: what is copied, what is only named, what is left
out (the browser tests in test_ui_chat.py show it in the page, with the sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeloop import CodeAgent
from codeloop.executors import LocalExecutor
from codeloop.testing import ScriptedModel
from codeloop.ui.chat_files import MAX_FILES_PER_STEP, ProducedFiles


def _agent(workdir: Path | None) -> CodeAgent:
    executor = LocalExecutor(workdir=workdir)
    return CodeAgent(
        [], ScriptedModel(["```python\nfinal_answer(1)\n```"]), executor=executor, verbosity_level=0
    )


def _produced(tmp_path: Path, max_file_bytes: int = 1000) -> tuple[ProducedFiles, dict[str, Path]]:
    registered: dict[str, Path] = {}
    return ProducedFiles(tmp_path / "offered", max_file_bytes, registered.__setitem__), registered


def test_new_and_changed_files_are_copied_under_tokens_and_large_ones_only_named(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "old.txt").write_text("from before the run")
    produced, registered = _produced(tmp_path)
    agent = _agent(work)
    produced.run_started(agent)
    (work / "sub").mkdir()
    (work / "sub" / "result.csv").write_text("a,b")
    (work / "big.bin").write_bytes(b"0" * 5000)
    item: Any = produced.step_finished(agent, 1)
    assert item["type"] == "files" and item["step"] == 1
    by_path = {f["path"]: f for f in item["files"]}
    assert set(by_path) == {"sub/result.csv", "big.bin"}  # old.txt was there before the run
    assert "too large to offer" in by_path["big.bin"]["note"] and "url" not in by_path["big.bin"]
    token = by_path["sub/result.csv"]["url"].split("/")[1]
    copy = registered[token]
    assert copy.read_text() == "a,b" and copy.is_relative_to(tmp_path / "offered")
    assert produced.step_finished(agent, 2) is None  # nothing changed since
    agent.close()


def test_a_step_writing_many_files_offers_some_and_says_how_many_not(tmp_path: Path) -> None:
    produced, registered = _produced(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    agent = _agent(work)
    produced.run_started(agent)
    for number in range(MAX_FILES_PER_STEP + 5):
        (work / f"f{number:02}.txt").write_text("x")
    item: Any = produced.step_finished(agent, 1)
    assert len(item["files"]) == MAX_FILES_PER_STEP and len(registered) == MAX_FILES_PER_STEP
    assert item["note"] == "5 more changed files are not offered"
    agent.close()


def test_a_local_executor_without_its_own_workdir_offers_nothing(tmp_path: Path) -> None:
    # Its working directory is the server's own (the run store, logs): those changes are not the code's.
    produced, _ = _produced(tmp_path)
    agent = _agent(None)
    produced.run_started(agent)
    assert produced.step_finished(agent, 1) is None
    agent.close()
