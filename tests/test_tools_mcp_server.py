"""codeloop agents served over MCP, checked with the official `mcp` SDK client: in-process, over stdio (a real
subprocess started the way an IDE would), and over streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP server tests need the `mcp` extra")

from mcp import Client

from codeloop import CodeAgent
from codeloop.store.sqlite import SQLiteStore
from codeloop.testing import ScriptedModel
from codeloop.tools import MCPClient, tool
from codeloop.tools.mcp_server import build_mcp_server

FACTORY = textwrap.dedent(
    '''
    """An agent factory for the MCP server tests: a CodeAgent whose scripted model adds the task's numbers."""
    import re

    from codeloop import CodeAgent
    from codeloop.testing import ScriptedModel
    from codeloop.tools import tool


    @tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first number.
            b: The second number.
        """
        return a + b


    def _script(request):
        task = next(m.text for m in request.messages if m.role == "user")
        a, b = (int(n) for n in re.findall(r"\\d+", task)[:2])
        return f"I will add them.\\n```python\\nresult = add({a}, {b})\\nprint(result)\\nfinal_answer(result)\\n```"


    def make_agent():
        return CodeAgent(
            tools=[add],
            model=ScriptedModel(_script),
            name="calculator",
            description="Adds the two numbers given in the task.",
            max_steps=3,
            verbosity_level=1,  # console output must not leak into the stdio protocol stream
        )
    '''
)


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent") / "agent_factory.py"
    path.write_text(FACTORY)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_stdio_server_runs_the_agent_and_its_tools(factory_file: Path) -> None:
    # The MCP SDK starts a stdio server with a minimal environment (HOME, PATH, ...) unless given one: without
    # CODELOOP_HOME the served agent recorded its runs in the developer's own store (~/.local/share/codeloop).
    home = os.environ["CODELOOP_HOME"]
    server = {
        "command": sys.executable,
        "args": [
            "-m",
            "codeloop.tools.mcp_server",
            "--agent",
            f"{factory_file}:make_agent",
            "--expose-tools",
        ],
        "env": {**os.environ, "CODELOOP_HOME": home},
    }
    with MCPClient(server, call_timeout=60) as tools:
        by_name = {t.name: t for t in tools}
        assert set(by_name) == {"calculator", "add"}
        assert by_name["calculator"].description == "Adds the two numbers given in the task."
        assert by_name["calculator"].required_inputs == ["task"]
        assert by_name["calculator"](task="What is 2 plus 40?") == "42"
        assert by_name["calculator"](task="And 1000 plus 337?") == "1337"
        # the agent's own tool, with the schema codeloop derived from its hints and docstring
        assert by_name["add"].inputs["a"] == {"type": "integer", "description": "The first number."}
        assert by_name["add"](a=20, b=22) == "42"
    # the served agent's runs are in the test session's store, where the conftest put CODELOOP_HOME
    store = SQLiteStore(Path(home) / "runs.db")
    try:
        tasks = {run.task for run in store.list_runs() if run.agent == "calculator"}
    finally:
        store.close()
    assert {"What is 2 plus 40?", "And 1000 plus 337?"} <= tasks


def test_streamable_http_server_with_parallel_tasks(factory_file: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codeloop.tools.mcp_server",
            "--agent",
            f"{factory_file}:make_agent",
            "--transport",
            "streamable-http",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        f"server did not start: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.05)

        async def ask() -> list[Any]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                listed = await client.list_tools()
                assert [t.name for t in listed.tools] == ["calculator"]  # tools not exposed
                results = await asyncio.gather(
                    *(client.call_tool("calculator", {"task": f"Add {i} and {i * 10}"}) for i in range(1, 5))
                )
                return [r.content[0].text for r in results]

        assert asyncio.run(ask()) == ["11", "22", "33", "44"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_errors_come_back_as_tool_errors() -> None:
    @tool
    def shout(text: str, times: int = 1) -> str:
        """Shout text.

        Args:
            text: What to shout.
            times: How many times.
        """
        return " ".join([text.upper()] * times)

    def script(request: Any) -> str:
        return "```python\nraise RuntimeError('the model cannot do this')\n```"

    def unreachable(request: Any) -> str:
        raise ConnectionError("model API unreachable")

    agent = CodeAgent(
        tools=[shout], model=ScriptedModel(script), max_steps=1, verbosity_level=0, description="Fails."
    )
    server = build_mcp_server(agent, expose_tools=True)

    async def exercise() -> dict[str, Any]:
        async with Client(server) as client:
            out: dict[str, Any] = {}
            out["listed"] = {t.name: t for t in (await client.list_tools()).tools}
            out["ok"] = await client.call_tool("shout", {"text": "hey", "times": 2})
            out["bad_args"] = await client.call_tool("shout", {"text": "hey", "times": "many"})
            out["empty_task"] = await client.call_tool("run_agent", {"task": "  "})
            agent.model = ScriptedModel(unreachable)
            out["failing_run"] = await client.call_tool("run_agent", {"task": "do the impossible"})
            return out

    out = asyncio.run(exercise())
    assert set(out["listed"]) == {"run_agent", "shout"}
    assert out["listed"]["shout"].input_schema["required"] == ["text"]
    assert out["ok"].content[0].text == "HEY HEY" and not out["ok"].is_error
    assert out["bad_args"].is_error and "'times'" in out["bad_args"].content[0].text
    assert out["empty_task"].is_error and "non-empty string" in out["empty_task"].content[0].text
    failing = out["failing_run"]
    assert failing.is_error
    assert (
        "The agent's run failed" in failing.content[0].text
        and "model API unreachable" in failing.content[0].text
    )
