"""The `codeloop` command: run against the scripted server, model resolution, exit codes, the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
