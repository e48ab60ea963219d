"""`codeloop resume` and `codeloop approve`: a real `codeloop run` process killed with SIGKILL, resumed by another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from codeloop.cli import main
from codeloop.testing import ScriptRequest
from codeloop.testing.server import ScriptedLLMServer


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}


def test_a_killed_cli_run_is_resumed_by_codeloop_resume_without_repeating_its_first_step(
    tmp_path: Path,
) -> None:
    release = threading.Event()
    first_steps: list[int] = []

    def script(request: ScriptRequest) -> str:
        if len(request.messages) == 2:  # system + task: the first step
            first_steps.append(request.index)
            return "Thought: first.\n```python\nmarker = 6 * 7\nprint(marker)\n```"
        if request.index == 1:
            release.wait(30)  # the first process "hangs" here until it is killed
        return "```python\nfinal_answer(marker + 1)\n```"

    journal = tmp_path / "journal"
    with ScriptedLLMServer(script) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeloop.cli", "run", "compute", "--model", "openai:gpt-4o",
             "--api-base", server.base_url, "--api-key", "k", "--executor", "local", "--journal", str(journal)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )  # fmt: skip
        try:
            deadline = time.time() + 60
            while len(server.requests) < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert len(server.requests) == 2, "the second model call never started"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            release.set()
            proc.kill()
        assert proc.returncode == -signal.SIGKILL
        (path,) = journal.glob("*.jsonl")
        done = subprocess.run(
            [sys.executable, "-m", "codeloop.cli", "resume", path.stem, "--journal", str(journal), "--api-key", "k",
             "--json"],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["run_id"], outcome["state"]) == (path.stem, "success")
    assert outcome["output"] == 43  # `marker` was rebuilt by re-executing step 1's code
    assert first_steps == [0]  # the model was not asked for step 1 again
    assert len(server.requests) == 3  # only the call in flight at the kill was made again
    again = subprocess.run(
        [sys.executable, "-m", "codeloop.cli", "resume", path.stem, "--journal", str(journal), "--api-key", "k"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert again.returncode == 1 and "already finished" in again.stderr


def test_resume_and_approve_refuse_unknown_runs_and_runs_with_nothing_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "0123abcd", "--journal", str(tmp_path), "--api-key", "k"]) == 2
    assert "no run '0123abcd' is journaled in" in capsys.readouterr().err
    with ScriptedLLMServer(["```python\nfinal_answer(1)\n```"]) as server:
        code = main(["run", "one", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                     "--executor", "local", "--journal", str(tmp_path)])  # fmt: skip
    assert code == 0
    (path,) = tmp_path.glob("*.jsonl")
    assert main(["approve", path.stem, "1.1", "--journal", str(tmp_path), "--api-key", "k"]) == 2
    assert f"run {path.stem} has no calls awaiting approval" in capsys.readouterr().err
