"""MCP client against real MCP servers: the reference time and fetch servers from PyPI over stdio, and a
server built with the official SDK over stdio, streamable HTTP and SSE. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP tests need the `mcp` extra (pip install 'codeloop[mcp]')")

from codeloop import ToolCallingAgent
from codeloop.errors import AgentToolCallError, ToolDefinitionError
from codeloop.testing import ScriptedModel
from codeloop.tools import MCPClient, MCPConnectionError, MCPTool, MCPToolError, Tool, ToolCollection

TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}

TEST_SERVER = textwrap.dedent(
    '''
    """A small MCP server written with the official SDK, for failure cases the reference servers lack."""
    import os
    import sys

    from mcp.server.mcpserver import Context, MCPServer

    app = MCPServer("codeloop-test")

    @app.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @app.tool(name="add-numbers")
    def add_numbers(a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    @app.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @app.tool()
    def die() -> str:
        """Exit the server process in the middle of the call."""
        os._exit(3)

    @app.tool()
    def garbage() -> str:
        """Write a malformed line on the protocol stream, then answer normally."""
        os.write(1, b"this is not json-rpc\\n")
        return "still here"

    @app.tool()
    async def hang() -> str:
        """Never answer."""
        import anyio
        await anyio.sleep(60)
        return "late"

    @app.tool()
    async def count_up(steps: int, ctx: Context) -> str:
        """Count to `steps`, reporting progress at each one."""
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"counted {i}")
        return f"counted to {steps}"

    if __name__ == "__main__":
        if len(sys.argv) == 3:
            transport = {"--http": "streamable-http", "--sse": "sse"}[sys.argv[1]]
            app.run(transport, host="127.0.0.1", port=int(sys.argv[2]))
        else:
            app.run()
    '''
)


@pytest.fixture(scope="module")
def server_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "test_server.py"
    path.write_text(TEST_SERVER)
    return path


@pytest.fixture(scope="module")
def time_and_test_tools(server_script: Path) -> Iterator[dict[str, Tool]]:
    client = MCPClient(
        [TIME_SERVER, {"command": sys.executable, "args": [str(server_script)]}], call_timeout=20
    )
    tools = client.connect()
    yield {t.name: t for t in tools}
    client.disconnect()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_http_server(script: Path, flag: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(script), flag, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120  # a Python process importing the MCP SDK: seconds on a busy machine
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the test MCP server did not listen on port {port}")


def test_reference_time_server_over_stdio(time_and_test_tools: dict[str, Tool]) -> None:
    now = time_and_test_tools["get_current_time"]
    assert isinstance(now, MCPTool)
    assert now.inputs["timezone"]["type"] == "string"
    assert "IANA timezone" in now.inputs["timezone"]["description"]
    assert now.required_inputs == ["timezone"]
    # the server declares an outputSchema, so the result is its structured dict
    assert now.output_type == "object"
    result = now(timezone="Asia/Tokyo")
    assert isinstance(result, dict)
    assert result["timezone"] == "Asia/Tokyo" and "+09:00" in result["datetime"]
    assert now("Europe/Paris")["timezone"] == "Europe/Paris"  # positional works too
    # inlined $refs: the conversion result's nested TimeResult is spelled out
    convert = time_and_test_tools["convert_time"]
    assert convert.output_schema is not None
    assert convert.output_schema["properties"]["source"]["properties"]["is_dst"] == {"type": "boolean"}
    converted = convert(source_timezone="UTC", time="12:00", target_timezone="Asia/Tokyo")
    assert converted["target"]["datetime"].endswith("T21:00:00+09:00")
    stub = now.to_code_prompt()
    assert stub.startswith("def get_current_time(timezone: str) -> dict:")
    assert "is_dst: boolean" in stub


def test_tool_error_is_an_mcp_tool_error(time_and_test_tools: dict[str, Tool]) -> None:
    with pytest.raises(MCPToolError, match="Invalid timezone"):
        time_and_test_tools["get_current_time"](timezone="Nowhere/Atlantis")
    # schema validation happens before the server is asked
    with pytest.raises(AgentToolCallError, match="'timezone': missing required argument"):
        time_and_test_tools["get_current_time"].validate_arguments({"zone": "UTC"})


def test_names_defaults_and_text_results(time_and_test_tools: dict[str, Tool]) -> None:
    add = time_and_test_tools["add_numbers"]  # "add-numbers" on the server
    assert isinstance(add, MCPTool) and add.remote_name == "add-numbers"
    assert add.required_inputs == ["a"]
    assert add.inputs["b"]["default"] == 1
    assert add(a=2) == {"result": 3}
    assert add.validate_arguments({"a": "4"}) == {"a": 4}
    client = MCPClient(
        {"command": sys.executable, "args": [str(time_and_test_tools["echo"]._server.stdio.args[0])]},  # type: ignore[attr-defined]
        structured_output=False,
    )
    with client as tools:
        echo = {t.name: t for t in tools}["echo"]
        assert echo.output_type == "string"
        assert echo("plain text please") == "plain text please"


def test_server_dying_mid_call_is_restarted_and_others_unaffected(
    time_and_test_tools: dict[str, Tool],
) -> None:
    tools = time_and_test_tools
    first_pid = tools["pid"]()["result"]
    with pytest.raises(MCPToolError, match="closed the connection during the call to 'die'.*restarted"):
        tools["die"]()
    # the time server never noticed
    assert tools["get_current_time"](timezone="UTC")["timezone"] == "UTC"
    second_pid = tools["pid"]()["result"]
    assert second_pid != first_pid
    # killed between calls: the next call starts it again without an error
    os.kill(second_pid, signal.SIGKILL)
    # "between calls": once the client has seen the server's end (kill() returns before the process exits, and
    # the SDK notices end-of-stream on its own loop); a call racing the exit would be one *during* the death
    server = tools["pid"]._server  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while server._alive():
        assert time.monotonic() < deadline, "the client never noticed the killed server"
        time.sleep(0.05)
    assert tools["pid"]()["result"] not in (first_pid, second_pid)


def test_malformed_message_does_not_break_the_session(time_and_test_tools: dict[str, Tool]) -> None:
    assert time_and_test_tools["garbage"]() == {"result": "still here"}
    assert time_and_test_tools["echo"](text="next") == {"result": "next"}


def test_call_timeout_is_an_observation(server_script: Path) -> None:
    with MCPClient({"command": sys.executable, "args": [str(server_script)]}, call_timeout=0.5) as tools:
        by_name = {t.name: t for t in tools}
        # the timeout's own error: had the client waited out the tool's 60 s hang, the call would return "late"
        with pytest.raises(MCPToolError, match="did not answer within 0.5 s"):
            by_name["hang"]()
        assert by_name["echo"](text="after") == {"result": "after"}


def test_server_that_fails_to_start_shows_its_stderr() -> None:
    failing = {
        "command": sys.executable,
        "args": [
            "-c",
            "import sys; print('config file /etc/x.toml is missing', file=sys.stderr); sys.exit(2)",
        ],
    }
    with pytest.raises(MCPConnectionError) as info:
        MCPClient(failing).connect()
    assert "failed to start or connect" in str(info.value)
    assert "config file /etc/x.toml is missing" in str(info.value)
    with pytest.raises(MCPConnectionError, match="command 'no-such-mcp-binary' was not found"):
        MCPClient({"command": "no-such-mcp-binary"}).connect()


def test_bad_server_specs_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot use 42 as an MCP server"):
        MCPClient(42)
    with pytest.raises(ValueError, match="transport 'websocket' is not supported"):
        MCPClient({"url": "http://127.0.0.1:1/mcp", "transport": "websocket"})
    with pytest.raises(TypeError, match="unknown keys \\['argv'\\]"):
        MCPClient({"command": "x", "argv": []})


def test_same_tool_name_on_two_servers(server_script: Path) -> None:
    spec = {"command": sys.executable, "args": [str(server_script)]}
    with pytest.raises(ToolDefinitionError, match="Two MCP servers offer a tool named 'echo'"):
        MCPClient([spec, spec]).connect()
    with MCPClient([spec, spec], tool_name_prefixes=["a_", "b_"]) as tools:
        names = {t.name for t in tools}
        assert {"a_echo", "b_echo"} <= names
        by_name = {t.name: t for t in tools}
        assert by_name["a_pid"]()["result"] != by_name["b_pid"]()["result"]


def test_streamable_http_server_restart_is_reconnected(server_script: Path) -> None:
    port = _free_port()
    proc = _start_http_server(server_script, "--http", port)
    try:
        with MCPClient(f"http://127.0.0.1:{port}/mcp", call_timeout=60) as tools:
            by_name = {t.name: t for t in tools}
            assert by_name["pid"]()["result"] == proc.pid
            proc.kill()
            proc.wait()
            with pytest.raises(MCPToolError):
                by_name["echo"](text="nobody home")
            proc = _start_http_server(server_script, "--http", port)
            assert by_name["pid"]()["result"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_sse_transport(server_script: Path) -> None:
    port = _free_port()
    proc = _start_http_server(server_script, "--sse", port)
    try:
        with ToolCollection.from_mcp(
            {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse"}
        ) as collection:
            by_name = {t.name: t for t in collection}
            assert by_name["echo"](text="over sse") == {"result": "over sse"}
    finally:
        proc.kill()
        proc.wait()


def test_async_calls_share_the_background_connection(time_and_test_tools: dict[str, Tool]) -> None:
    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                time_and_test_tools["echo"].acall(text="a"),
                time_and_test_tools["get_current_time"].acall(timezone="UTC"),
                time_and_test_tools["add_numbers"].acall(a=1, b=2),
            )
        )

    echoed, now, added = asyncio.run(main())
    assert echoed == {"result": "a"} and now["timezone"] == "UTC" and added == {"result": 3}

    async def with_async_client() -> str:
        async with MCPClient(TIME_SERVER) as tools:
            result = await tools[0].acall(timezone="UTC")
            return str(result["timezone"])

    assert asyncio.run(with_async_client()) == "UTC"


def test_single_tool_from_mcp() -> None:
    now = Tool.from_mcp(TIME_SERVER, "get_current_time")
    try:
        assert now.name == "get_current_time"
        assert now(timezone="UTC")["timezone"] == "UTC"
    finally:
        now.mcp_client.disconnect()  # type: ignore[attr-defined]
    with pytest.raises(ToolDefinitionError, match="offers no tool named 'get_weather'"):
        Tool.from_mcp(TIME_SERVER, "get_weather")


class _Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"<html><body><h1>Leopard</h1><p>Top speed 58 km/h.</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_reference_fetch_server_reads_a_local_page() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    fetch_server = {
        "command": sys.executable,
        "args": ["-m", "mcp_server_fetch", "--ignore-robots-txt", "--allow-private-ips"],
    }
    try:
        with MCPClient(fetch_server) as tools:
            fetch = tools[0]
            text = fetch(url=f"http://127.0.0.1:{httpd.server_address[1]}/leopard")
            assert isinstance(text, str)
            assert "Top speed 58 km/h." in text and "# Leopard" in text
    finally:
        httpd.shutdown()


def test_tool_calling_agent_uses_mcp_tools_and_sees_their_errors(
    time_and_test_tools: dict[str, Tool],
) -> None:
    tools = [time_and_test_tools["get_current_time"], time_and_test_tools["die"]]
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "get_current_time", "arguments": {"timezone": "Mars/Olympus"}}]},
            {"tool_calls": [{"name": "die", "arguments": {}}]},
            {"tool_calls": [{"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "done"}}]},
        ]
    )
    agent = ToolCallingAgent(tools=tools, model=model, max_steps=6, verbosity_level=0)
    assert agent.run("What time is it in Tokyo?") == "done"
    observations = [getattr(step, "observations", None) or "" for step in agent.memory.steps]
    joined = "\n".join(observations)
    assert "Invalid timezone" in joined
    assert "closed the connection during the call to 'die'" in joined
    assert "Asia/Tokyo" in joined and "+09:00" in joined


def test_code_agent_calls_mcp_tools_and_keeps_the_dict(time_and_test_tools: dict[str, Tool]) -> None:
    from codeloop import CodeAgent

    model = ScriptedModel(
        [
            "```python\nnow = get_current_time(timezone='Asia/Tokyo')\nprint(now['day_of_week'])\n```",
            "```python\nfinal_answer({'tz': now['timezone'], 'dst': now['is_dst']})\n```",
        ]
    )
    agent = CodeAgent(tools=[time_and_test_tools["get_current_time"]], model=model, verbosity_level=0)
    try:
        assert agent.run("Is Tokyo on daylight saving time?") == {"tz": "Asia/Tokyo", "dst": False}
        assert "def get_current_time(timezone: str) -> dict:" in agent.system_prompt()
    finally:
        agent.close()


@pytest.mark.parametrize("kind", ["local", "sandbox"])
def test_mcp_tools_run_on_the_host_from_every_executor(
    kind: str, time_and_test_tools: dict[str, Tool]
) -> None:
    from codeloop.executors import create_executor

    try:
        executor = create_executor(kind)
    except ValueError as exc:  # the sandbox executor is built by another part of the project
        if "unknown executor" in str(exc):
            pytest.skip(f"executor {kind!r} is not available in this build: {exc}")
        raise
    with executor:
        executor.send_tools({"get_current_time": time_and_test_tools["get_current_time"]})
        result = executor.run("now = get_current_time(timezone='Asia/Tokyo')\nfinal_answer(now['timezone'])")
        assert result.is_final_answer and result.output == "Asia/Tokyo"


def test_progress_notifications_become_tool_progress_events(server_script: Path) -> None:
    from codeloop.events import Event, ToolProgress

    seen: list[Event] = []
    with MCPClient({"command": sys.executable, "args": [str(server_script)]}, on_event=seen.append) as tools:
        count_up = next(t for t in tools if t.name == "count_up")
        assert count_up(steps=3) == {"result": "counted to 3"}
    assert seen == [ToolProgress("count_up", i, 3, f"counted {i}") for i in (1, 2, 3)]
    assert seen[0].describe() == "count_up: 1/3 (33%) counted 1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("agent_kind", ["tool-calling", "code"])
def test_agents_pass_mcp_progress_to_their_listeners_and_console(
    agent_kind: str, time_and_test_tools: dict[str, Tool]
) -> None:
    import io

    from rich.console import Console

    from codeloop import CodeAgent
    from codeloop.console import ConsoleRenderer
    from codeloop.events import Event, StepFinished, ToolProgress

    seen: list[Event] = []
    screen = io.StringIO()
    console = ConsoleRenderer(level=1, console=Console(file=screen, width=200))
    tools = [time_and_test_tools["count_up"]]
    if agent_kind == "tool-calling":
        model = ScriptedModel(
            [
                {  # two calls in one step run in parallel threads; both report to this run
                    "tool_calls": [
                        {"name": "count_up", "arguments": {"steps": 2}},
                        {"name": "count_up", "arguments": {"steps": 1}},
                    ]
                },
                {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "done"}}]},
            ]
        )
        agent: Any = ToolCallingAgent(
            tools, model, verbosity_level=0, listeners=[seen.append, console], name="counter"
        )
    else:
        model = ScriptedModel(
            ["```python\nprint(count_up(steps=2))\n```", "```python\nfinal_answer('done')\n```"]
        )
        agent = CodeAgent(
            tools,
            model,
            executor="local",
            verbosity_level=0,
            listeners=[seen.append, console],
            name="counter",
        )
    try:
        assert agent.run("count to two") == "done"
    finally:
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    assert time_and_test_tools["count_up"].event_listeners == []  # type: ignore[attr-defined]  # nothing left attached
    progress = [e for e in seen if isinstance(e, ToolProgress)]
    expected = [("count_up", 1, 2, "counted 1", "counter"), ("count_up", 2, 2, "counted 2", "counter")]
    if agent_kind == "tool-calling":
        expected.append(("count_up", 1, 1, "counted 1", "counter"))
    got = [(e.tool, e.progress, e.total, e.message, e.agent) for e in progress]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    first_step_end = next(i for i, e in enumerate(seen) if isinstance(e, StepFinished))
    assert seen.index(progress[-1]) < first_step_end  # delivered while the step ran, not afterwards
    assert "progress count_up: 2/2 (100%) counted 2" in screen.getvalue()
