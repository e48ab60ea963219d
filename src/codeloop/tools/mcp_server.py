"""MCP server: expose a codeloop agent (and optionally its tools) to any MCP client.

    from codeloop.tools.mcp_server import serve_agent
    serve_agent(agent, transport="stdio")                        # an IDE launches this process
    serve_agent(make_agent, transport="streamable-http", port=8000, expose_tools=True)

The agent appears as one MCP tool (named after the agent, `run_agent` by default) taking a `task`; the
answer comes back as text (JSON for non-string results). Given an agent instance, calls take turns on it,
each starting fresh; given a factory (a callable returning a new agent), every call gets its own agent, so
calls run side by side. With `expose_tools=True` the agent's own tools are listed too, with their schemas.

From the command line (`codeloop mcp serve ...`, or `python -m codeloop.tools.mcp_server ...`) the agent comes
from a saved agent folder or from `module:attribute` / `path/to/file.py:attribute` naming an agent or factory.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import AgentToolCallError

__all__ = ["build_mcp_server", "serve_agent", "main", "AGENT_TOOL_INPUT"]

AGENT_TOOL_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "description": "The task, described completely: the agent sees nothing but this text.",
        }
    },
    "required": ["task"],
}
_DEFAULT_DESCRIPTION = (
    "Hand a task to a codeloop agent. It plans, writes and runs Python code, calls its tools, and answers "
    "with the final result."
)


def _is_agent(candidate: Any) -> bool:
    return hasattr(candidate, "run") and hasattr(candidate, "tools") and hasattr(candidate, "memory")


class _AgentHost:
    """Runs tasks on one shared agent (one at a time) or on a fresh agent from a factory per task."""

    def __init__(self, agent_or_factory: Any) -> None:
        if _is_agent(agent_or_factory):
            self.template = agent_or_factory
            self.factory: Callable[[], Any] | None = None
        elif callable(agent_or_factory):
            self.factory = agent_or_factory
            self.template = agent_or_factory()
            if not _is_agent(self.template):
                raise TypeError(f"the agent factory returned {self.template!r}, not a codeloop agent")
        else:
            raise TypeError(
                f"serve an agent or a zero-argument callable returning one, not {agent_or_factory!r}"
            )
        self._lock: asyncio.Lock | None = None

    async def run(self, task: str) -> Any:
        if self.factory is not None:
            return await self._run_on(await asyncio.to_thread(self.factory), task)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one agent, one memory: tasks take turns
            return await self._run_on(self.template, task)

    @staticmethod
    async def _run_on(agent: Any, task: str) -> Any:
        if hasattr(agent, "arun"):
            return await agent.arun(task)
        return await asyncio.to_thread(agent.run, task)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def build_mcp_server(
    agent_or_factory: Any,
    *,
    name: str | None = None,
    expose_tools: bool = False,
    instructions: str | None = None,
) -> Any:
    """An `mcp.server.lowlevel.Server` offering the agent as a tool (and its tools when `expose_tools`)."""
    try:
        import mcp_types as types
        from mcp.server.lowlevel import Server
    except ImportError as exc:
        raise ImportError("serving over MCP needs the MCP SDK: pip install 'codeloop[mcp]'") from exc

    host = _AgentHost(agent_or_factory)
    agent = host.template
    agent_tool_name = agent.name or "run_agent"
    tools: dict[str, Any] = {}
    if expose_tools:
        tools = {n: t for n, t in agent.tools.items() if n not in ("final_answer", agent_tool_name)}

    listing = [
        types.Tool(
            name=agent_tool_name,
            description=agent.description or _DEFAULT_DESCRIPTION,
            input_schema=AGENT_TOOL_INPUT,
        )
    ]
    structured: set[str] = set()
    for tool_name, tool in tools.items():
        output_schema = tool.output_schema if (tool.output_schema or {}).get("type") == "object" else None
        if output_schema is not None:
            structured.add(tool_name)
        listing.append(
            types.Tool(
                name=tool_name,
                description=tool.description,
                input_schema=tool.parameters_schema,
                output_schema=output_schema,
            )
        )
    schemas = {t.name: dict(t.input_schema) for t in listing}

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    def failure(message: str) -> Any:
        return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)

    async def call_tool(ctx: Any, params: Any) -> Any:
        arguments = dict(params.arguments or {})
        if params.name == agent_tool_name:
            task = arguments.get("task")
            if not isinstance(task, str) or not task.strip():
                return failure("Give the agent a task: a non-empty string in the 'task' argument.")
            try:
                output = await host.run(task)
            except Exception as exc:  # the client sees why the run failed; the server keeps serving
                return failure(f"The agent's run failed: {type(exc).__name__}: {exc}")
            return types.CallToolResult(content=[types.TextContent(type="text", text=_as_text(output))])
        tool = tools.get(params.name)
        if tool is None:
            return failure(f"Unknown tool {params.name!r}; this server offers: {', '.join(schemas)}.")
        try:
            result = await tool.acall(**tool.validate_arguments(arguments))
        except AgentToolCallError as exc:
            return failure(str(exc))
        except Exception as exc:
            return failure(f"Tool {params.name!r} failed: {type(exc).__name__}: {exc}")
        content: list[Any] = [types.TextContent(type="text", text=_as_text(result))]
        if params.name in structured and isinstance(result, dict):
            return types.CallToolResult(content=content, structured_content=result)
        return types.CallToolResult(content=content)

    return Server(
        name or agent.name or "codeloop-agent",
        instructions=instructions or agent.description,
        get_tool_input_schema=schemas.get,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_agent(
    agent_or_factory: Any,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    expose_tools: bool = False,
    name: str | None = None,
) -> None:
    """Serve the agent over MCP until the client disconnects (stdio) or the process is stopped (HTTP)."""
    server = build_mcp_server(agent_or_factory, name=name, expose_tools=expose_tools)
    if transport == "stdio":
        import anyio
        from mcp.server.stdio import stdio_server

        async def run_stdio() -> None:
            # stdio_server points fd 1 at stderr while serving, so the agent's console output cannot
            # corrupt the protocol stream.
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())

        anyio.run(run_stdio)
    elif transport in ("streamable-http", "http"):
        import uvicorn

        app = server.streamable_http_app(streamable_http_path=path, host=host)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    else:
        raise ValueError(f"unknown MCP transport {transport!r}; use 'stdio' or 'streamable-http'")


def _load_agent_reference(reference: str, trust_remote_code: bool) -> Any:
    """An agent or factory from a saved agent folder, `module:attribute` or `file.py:attribute`."""
    if Path(reference).is_dir():
        from ..agent_io import load_agent

        return load_agent(reference, trust_remote_code=trust_remote_code)
    target, _, attribute = reference.rpartition(":")
    if not target or not attribute:
        raise ValueError(
            f"--agent {reference!r}: give a saved agent folder, 'package.module:name' or 'path/to/file.py:name'"
        )
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if spec is None or spec.loader is None:
            raise ValueError(f"--agent {reference!r}: cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, attribute):
        raise ValueError(f"--agent {reference!r}: {target} has no attribute {attribute!r}")
    value = getattr(module, attribute)
    if inspect.isclass(value):
        raise ValueError(f"--agent {reference!r} is a class; point at an agent or a function returning one")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `codeloop mcp serve` (shared with `python -m codeloop.tools.mcp_server`)."""
    parser.add_argument(
        "--agent",
        required=True,
        help="a saved agent folder, or module:name / file.py:name of an agent or a function returning one",
    )
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", default="/mcp", help="URL path of the streamable-HTTP endpoint")
    parser.add_argument("--expose-tools", action="store_true", help="list the agent's own tools as well")
    parser.add_argument("--name", default=None, help="server name shown to clients")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="accepted for compatibility, no effect: --agent names code on this machine (a saved folder or a "
        "module), which loads without a flag, as an import would",
    )


def run_from_arguments(args: argparse.Namespace) -> int:
    """Serve the agent the parsed arguments describe; returns the exit code."""
    try:
        target = _load_agent_reference(args.agent, args.trust_remote_code)
    except (ValueError, ImportError, OSError) as exc:
        print(f"codeloop mcp serve: {exc}", file=sys.stderr)
        return 2
    serve_agent(
        target,
        transport=args.transport,
        host=args.host,
        port=args.port,
        path=args.path,
        expose_tools=args.expose_tools,
        name=args.name,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`codeloop mcp serve` as a function: parse `argv` and serve."""
    parser = argparse.ArgumentParser(
        prog="codeloop mcp serve", description="Serve a codeloop agent over MCP."
    )
    add_arguments(parser)
    return run_from_arguments(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
