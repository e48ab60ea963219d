"""The `codeloop` command: run against the scripted server, model resolution, exit codes, the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codeloop.cli import UsageError, main, resolve_model_spec
from codeloop.testing.server import ScriptedLLMServer


def test_run_json_against_an_openai_compatible_server(capsys: pytest.CaptureFixture[str]) -> None:
    replies = [
        "Thought: square.\n```python\nn = 12 ** 2\nprint(n)\n```",
        "```python\nfinal_answer(n + 1)\n```",
    ]
    with ScriptedLLMServer(replies) as server:
        code = main(
            ["run", "square twelve then add one", "--model", "openai:gpt-4o", "--api-base", server.base_url,
             "--api-key", "test-key", "--executor", "local", "--json"]
        )  # fmt: skip
        assert len(server.requests) == 2
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output"] == 145
    assert out["state"] == "success"
    assert [s["type"] for s in out["steps"]].count("action") == 2
    assert out["token_usage"]["input_tokens"] > 0 and out["duration_s"] >= 0


def test_tool_calling_agent_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    replies = [{"tool_calls": [{"name": "final_answer", "arguments": {"answer": "hi"}}]}]
    with ScriptedLLMServer(replies) as server:
        code = main(["run", "say hi", "--model", "openai:gpt-4o", "--api-base", server.base_url,
                     "--api-key", "k", "--agent", "tool-calling", "--json"])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out)["output"] == "hi"


def test_model_resolution_order() -> None:
    assert resolve_model_spec("openai:x", {"CODELOOP_MODEL": "anthropic:y"}) == "openai:x"
    assert resolve_model_spec(None, {"CODELOOP_MODEL": "anthropic:y", "OPENAI_API_KEY": "k"}) == "anthropic:y"
    assert resolve_model_spec(None, {"OPENAI_API_KEY": "k"}).startswith("openai:")
    assert resolve_model_spec(None, {"ANTHROPIC_API_KEY": "k"}).startswith("anthropic:")
    assert resolve_model_spec(None, {"HF_TOKEN": "k"}).startswith("hf:")


def test_no_model_configured_exits_2_with_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("codeloop.cli._local_ollama_model", lambda: None)
    with pytest.raises(UsageError):
        resolve_model_spec(None, {})
    assert main(["run", "anything"]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "OPENAI_API_KEY" in err and "Ollama" in err


def test_unknown_provider_exits_2_listing_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "x", "--model", "nosuch:model"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "openai" in err


def test_demo_command_runs_offline_and_says_replies_are_recorded() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    proc = subprocess.run(
        [sys.executable, "-m", "codeloop.cli", "demo", "--executor", "local"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "RECORDED" in proc.stdout
    assert "Answer: 9.6 seconds" in proc.stdout


def test_ctrl_c_stops_cleanly_and_prints_the_steps_so_far() -> None:
    import signal
    import threading
    import time

    from codeloop.testing import ScriptRequest

    release = threading.Event()

    def script(request: ScriptRequest) -> str:
        if request.index == 0:
            return "Thought: first.\n```python\nmarker = 'step-one-ran'\nprint(marker)\n```"
        release.wait(30)  # the model "hangs" until the test ends
        return "```python\nfinal_answer(0)\n```"

    with ScriptedLLMServer(script) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeloop.cli", "run", "hang on step two", "--model", "openai:gpt-4o",
             "--api-base", server.base_url, "--api-key", "k", "--executor", "local"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.time() + 60
            while len(server.requests) < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert len(server.requests) == 2, "the second model call never started"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            release.set()
            proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    assert "step-one-ran" in out  # the replay shows step 1's observation


def test_plain_run_ends_with_a_cost_line(capsys: pytest.CaptureFixture[str]) -> None:
    replies = [
        {
            "content": "```python\nfinal_answer('ok')\n```",
            "usage": {"input_tokens": 1000, "output_tokens": 100},
        }
    ]
    with ScriptedLLMServer(replies) as server:
        code = main(["run", "cost", "--model", "openai:gpt-4o", "--api-base", server.base_url,
                     "--api-key", "k", "--executor", "local"])  # fmt: skip
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("[success | 1 steps | 1,000 in / 100 out tokens | $")
    from codeloop.models.base import TokenUsage
    from codeloop.models.pricing import estimate_cost

    expected = estimate_cost("gpt-4o", TokenUsage(1000, 100))
    assert expected is not None and f"${expected:.4f}" in last


def test_cli_tools_flag_loads_builtin_tools_and_rejects_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    replies = ["```python\nfinal_answer(callable(visit_webpage))\n```"]
    with ScriptedLLMServer(replies) as server:
        code = main(["run", "tools", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "k",
                     "--executor", "local", "--tools", "visit_webpage", "--json"])  # fmt: skip
        system = server.requests[0]["messages"][0]["content"]
    assert code == 0 and json.loads(capsys.readouterr().out)["output"] is True
    assert "def visit_webpage(" in system
    assert main(["run", "x", "--model", "openai:gpt-4o", "--api-key", "k", "--tools", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_mcp_serve_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mcp", "serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--agent" in out and "streamable-http" in out and "--expose-tools" in out
    assert main(["mcp", "serve", "--agent", "no_such_module_xyz:agent"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


# --- issue 8 §2.9: the CLI under real use ---------------------------------------------------------------------

RUN = ["run", "--model", "openai:gpt-4o", "--api-key", "k", "--executor", "local"]


def _cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real `codeloop` process; the environment has no API keys and no forced I/O encoding."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY") and k != "PYTHONIOENCODING"}
    env["PYTHONUTF8"] = "0"
    return subprocess.run(
        [sys.executable, "-m", "codeloop.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("task", ["", "   \n"])
def test_an_empty_task_is_exit_2_and_one_sentence(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedLLMServer([]) as server:
        assert main([*RUN, "--api-base", server.base_url, task]) == 2
        assert server.requests == []  # refused before any model call
    err = capsys.readouterr().err
    assert err.startswith("codeloop: the task from the argument is empty") and err.count("\n") == 1
    assert "Traceback" not in err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    import codeloop

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"codeloop {codeloop.__version__}"


def test_a_2_mb_task_through_stdin_and_through_a_file(tmp_path: Path) -> None:
    task = "Count the words of this text and give the number.\n" + "lorem ipsum " * 180_000  # 2.2 MB
    path = tmp_path / "task.txt"
    path.write_text(task, encoding="utf-8")
    replies = ["```python\nfinal_answer('read')\n```"] * 2
    # a model with no known context window: gpt-4o's 128k would refuse this task before any call (as it should)
    run = [a if a != "openai:gpt-4o" else "openai:local-model" for a in RUN]
    with ScriptedLLMServer(replies) as server:
        by_stdin = _cli(*run, "--api-base", server.base_url, "--json", "-", stdin=task)
        by_file = _cli(*run, "--api-base", server.base_url, "--json", f"@{path}")
        sent = [r["messages"][1]["content"] for r in server.requests]
    assert by_stdin.returncode == 0, by_stdin.stderr
    assert by_file.returncode == 0, by_file.stderr
    assert len(sent) == 2 and all(task in text for text in sent)


def test_a_task_larger_than_the_models_context_window_is_refused_before_any_call(tmp_path: Path) -> None:
    task = "Count the words of this text.\n" + "lorem ipsum " * 180_000  # ~720k tokens > gpt-4o's 128k
    with ScriptedLLMServer(["```python\nfinal_answer('read')\n```"]) as server:
        done = _cli(*RUN, "--api-base", server.base_url, "-", stdin=task)
        assert server.call_count == 0
    assert done.returncode == 2 and "context window of 'gpt-4o' is 128,000 tokens" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreadable_task_file_is_exit_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.txt"
    assert main([*RUN, f"@{missing}"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "No such file" in err


def test_a_task_that_is_not_utf8_is_refused_before_the_model_is_called() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
    with ScriptedLLMServer([]) as server:
        base = [sys.executable, "-m", "codeloop.cli", *RUN, "--api-base", server.base_url]
        by_arg = subprocess.run([*base, b"\xff odd bytes"], capture_output=True, timeout=60, env=env)
        by_stdin = subprocess.run(
            [*base, "-"], input=b"\xff odd bytes", capture_output=True, timeout=60, env=env
        )
        assert server.requests == []
    assert (by_arg.returncode, by_stdin.returncode) == (2, 2)
    assert b"the task from the argument is not UTF-8 text" in by_arg.stderr
    assert b"the task on stdin is not UTF-8 text" in by_stdin.stderr


def test_missing_key_names_the_cli_flag_and_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["run", "a task", "--model", "openai:gpt-4o"]) == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "OPENAI_API_KEY" in err and "api_key=" not in err


def test_retries_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    from codeloop.testing import Fault

    replies = [Fault.rate_limit(retry_after=1), "```python\nfinal_answer(7)\n```"]
    with ScriptedLLMServer(replies) as server:
        code = main([*RUN, "--api-base", server.base_url, "--json", "seven"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["output"] == 7
    assert "codeloop: openai model 'gpt-4o': retrying in 1 s: HTTP 429: Rate limit reached" in captured.err
    with ScriptedLLMServer(replies) as server:  # with the live console: the same line, once, on stderr
        assert main([*RUN, "--api-base", server.base_url, "seven"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("retrying in 1 s: HTTP 429") == 1 and "retrying" not in captured.out


def test_a_silent_server_shows_the_wait_and_timeout_applies() -> None:
    from codeloop.testing import Fault

    replies = [Fault.hang(60), "```python\nfinal_answer('late but here')\n```"]
    with ScriptedLLMServer(replies) as server:
        proc = _cli(*RUN, "--api-base", server.base_url, "--timeout", "6", "--json", "answer slowly")
        assert len(server.requests) == 2  # the hung request was given up after 6 s and retried
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == "late but here"
    assert (
        "codeloop: waiting for openai:gpt-4o: no reply for 5 s; each request gives up after 6 s"
        in proc.stderr
    )
    assert "retrying in" in proc.stderr and "no response" in proc.stderr


def test_timeout_and_max_retries_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--timeout", "0"], ["--timeout", "soon"], ["--max-retries", "-1"], ["--max-steps", "0"]):
        with pytest.raises(SystemExit) as info:
            main([*RUN, *bad, "task"])
        assert info.value.code == 2
        assert bad[0] in capsys.readouterr().err


def test_running_out_of_steps_has_its_own_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    replies = ["```python\nx = 1\n```", "I could not finish; x is 1."]
    with ScriptedLLMServer(replies) as server:
        code = main([*RUN, "--api-base", server.base_url, "--max-steps", "1", "never finishes"])
    captured = capsys.readouterr()
    assert code == 3
    assert "max_steps=1" in captured.err
    assert captured.out.strip().splitlines()[-1].startswith("[max_steps | 1 steps")


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from codeloop.cli import EXIT_CODES

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code, meaning in EXIT_CODES.items():
        assert f"{code:<4} {meaning[:30]}" in out
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert all(f"| {code} |" in readme for code in EXIT_CODES)


def test_a_run_ends_with_one_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    replies = ["```python\nprint('working')\n```", "```python\nfinal_answer('ok')\n```"]
    with ScriptedLLMServer(replies) as server:
        assert main([*RUN, "--api-base", server.base_url, "two steps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summaries = [line for line in lines if "steps" in line and ("tokens" in line or "s]" in line)]
    assert summaries == [lines[-1]], summaries
    assert not any(line.startswith("state: ") for line in lines)


def test_agent_code_printing_a_lone_surrogate_does_not_crash_the_cli() -> None:
    replies = ["```python\nprint('bad \\udcff byte')\n```", "```python\nfinal_answer('survived')\n```"]
    with ScriptedLLMServer(replies) as server:
        proc = _cli(*RUN, "--api-base", server.base_url, "print odd text")
        second_prompt = json.dumps(server.requests[-1]["messages"])
    assert proc.returncode == 0, proc.stderr
    # Shown and sent back to the model with a replacement character (`?` or U+FFFD, whichever layer replaced it).
    assert re.search("bad [?\ufffd] byte", proc.stdout) and "survived" in proc.stdout
    assert re.search(r"bad (\?|\\ufffd) byte", second_prompt)
    assert "UnicodeEncodeError" not in proc.stdout + proc.stderr


def test_the_waiting_notice_follows_the_model_through_retries() -> None:
    import io
    import time

    from codeloop import events as ev
    from codeloop.cli import WaitingNotice
    from codeloop.models.reliability import RetryNotice

    out = io.StringIO()
    # `every` is long: a second notice would need the model silent that long, not a slow machine
    notice = WaitingNotice("openai:gpt-4o", 30, first_after=0.3, every=600, out=out)
    notice.start()
    try:
        notice(ev.StepStarted(1))
        notice(ev.ModelRetry(RetryNotice("openai", "gpt-4o", 1, 3, 1.0, 429, "slow down")))
        # still waiting for the model after the retry: a notice (waited for, however busy the machine is)
        deadline = time.monotonic() + 30
        while not out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        notice(ev.CodeAction("x = 1", 1))
        time.sleep(1.0)  # code running, not the model: no notice (a notice would be due after 0.3 s)
    finally:
        notice.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codeloop: waiting for openai:gpt-4o: no reply for")
    assert "each request gives up after 30 s" in lines[0]
