"""`codeloop resume` and `codeloop approve`: a real `codeloop run` process killed with SIGKILL, resumed by another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# --- `--store` on resume and approve: the journal read from the run store the run was recorded in -------------------


def _cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeloop.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


@pytest.fixture(params=["sqlite-path", "sqlite-url", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(the spec `codeloop run` records with, the spec `resume`/`approve` are given) for one store."""
    if request.param == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        return url, url
    path = tmp_path / "runs.db"
    return str(path), (str(path) if request.param == "sqlite-path" else f"sqlite:///{path}")


@pytest.mark.timeout(900)
def test_a_killed_run_is_resumed_from_its_store_with_resume_store(
    store_spec: tuple[str, str],
) -> None:
    recorded_in, given = store_spec
    release = threading.Event()
    first_steps: list[int] = []

    def script(request: ScriptRequest) -> str:
        if len(request.messages) == 2:
            first_steps.append(request.index)
            return "Thought: first.\n```python\nmarker = 6 * 7\nprint(marker)\n```"
        if request.index == 1:
            release.wait(30)
        return "```python\nfinal_answer(marker + 1)\n```"

    with ScriptedLLMServer(script) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeloop.cli", "run", "compute", "--model", "openai:gpt-4o",
             "--api-base", server.base_url, "--api-key", "k", "--executor", "local", "--store", recorded_in],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )  # fmt: skip
        try:
            deadline = time.time() + 240  # a loaded machine starts a process slowly
            while len(server.requests) < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert len(server.requests) == 2, "the second model call never started"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            release.set()
            proc.kill()
        listed = _cli("runs", "--store", given, "list", "--json")
        [row] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert row["state"] == "abandoned", listed.stderr
        done = _cli("resume", row["run_id"][:10], "--store", given, "--api-key", "k", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["run_id"], outcome["state"], outcome["output"]) == (row["run_id"], "success", 43)
    assert first_steps == [0] and len(server.requests) == 3  # nothing completed was asked again
    [after] = [
        json.loads(line) for line in _cli("runs", "--store", given, "list", "--json").stdout.splitlines()
    ]
    assert (after["run_id"], after["state"]) == (row["run_id"], "success")  # recorded as the same run


class _Page(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        _Page.hits.append(self.path)
        body = b"<html><body><p>the secret is 7</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.timeout(600)
@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_approve_with_store_decides_a_paused_run_from_another_process(decision: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    _Page.hits = []
    page = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{page.server_address[1]}/secret"

    def script(request: ScriptRequest) -> str:
        if request.index == 0:
            return f"```python\nseen = 'before'\ntext = visit_webpage('{url}')\nfinal_answer(seen + ': ' + text)\n```"
        return "```python\nfinal_answer('denied: ' + seen)\n```"  # after a denial the model is asked again

    try:
        with ScriptedLLMServer(script) as server:
            paused = _cli(
                "run", "read the secret", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                "--executor", "local", "--tools", "visit_webpage", "--require-approval", "visit_webpage",
                "--store", str(db), "--json",
            )  # fmt: skip
            assert paused.returncode == 4, paused.stderr
            first = json.loads(paused.stdout)
            assert [p["call_id"] for p in first["pending"]] == ["1.1"] and _Page.hits == []
            deny = ["--deny", "not now"] if decision == "deny" else []
            done = _cli(
                "approve",
                first["run_id"],
                "1.1",
                *deny,
                "--store",
                f"sqlite:///{db}",
                "--api-key",
                "k",
                "--json",
            )
    finally:
        page.shutdown()
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["run_id"], outcome["state"]) == (first["run_id"], "success")
    if decision == "approve":
        assert outcome["output"].startswith("before: ") and "the secret is 7" in outcome["output"]
        assert _Page.hits == ["/secret"]  # the approved call ran, once
    else:
        assert outcome["output"] == "denied: before" and _Page.hits == []
    rows = [
        json.loads(line) for line in _cli("runs", "--store", str(db), "list", "--json").stdout.splitlines()
    ]
    assert [(r["run_id"], r["state"]) for r in rows] == [(first["run_id"], "success")]


@pytest.mark.timeout(600)
def test_resume_says_where_it_looked_when_the_run_is_not_there(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with ScriptedLLMServer(["```python\nfinal_answer(1)\n```"]) as server:
        ran = _cli("run", "one", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                   "--executor", "local", "--store", str(db), "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    missing = _cli("resume", "feedbeef", "--store", str(db), "--api-key", "k")
    assert missing.returncode == 2
    assert f"run 'feedbeef' is not in the store {db}" in missing.stderr and "--journal DIR" in missing.stderr
    nowhere = _cli("approve", "feedbeef", "--store", "none", "--api-key", "k")
    assert (
        nowhere.returncode == 2
        and "--store none leaves nowhere to read run feedbeef's journal" in nowhere.stderr
    )
    other = _cli(
        "resume", json.loads(ran.stdout)["run_id"], "--store", str(tmp_path / "other.db"), "--api-key", "k"
    )
    assert other.returncode == 2 and "is not in the store" in other.stderr
    finished = _cli("resume", json.loads(ran.stdout)["run_id"], "--store", str(db), "--api-key", "k")
    assert finished.returncode == 1 and "already finished" in finished.stderr
    journal_dir = _cli(
        "resume", json.loads(ran.stdout)["run_id"], "--journal", str(tmp_path / "j"), "--api-key", "k"
    )
    assert journal_dir.returncode == 2 and f"is journaled in {tmp_path / 'j'}" in journal_dir.stderr
