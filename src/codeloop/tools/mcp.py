"""MCP client: tools from Model Context Protocol servers, on the official `mcp` SDK (2.x).

    from codeloop.tools import MCPClient

    with MCPClient({"command": "uvx", "args": ["mcp-server-time"]}) as tools:
        agent = CodeAgent(tools=tools, model=...)

A server is given as a `StdioServerParameters`, a dict (`{"command", "args", "env", "cwd"}` for a local
process; `{"url", "transport": "streamable-http" | "sse", "headers"}` for a remote one) or a URL string
(streamable HTTP). Every connection lives on one background event loop, so the same tools work from sync
code, from async code (`await tool.acall(...)`), and from any executor: the tools run on the host.

Tools whose server declares an `outputSchema` return its structured result (a dict); the others return
their text. A tool error (`isError`), a server that dies mid-call or sends garbage, and a call that times
out all raise `MCPToolError`, which the agent shows the model as an observation; the other servers are
unaffected, and a server found dead is restarted (or reconnected) on the next call.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ..errors import AgentToolExecutionError, CodeloopError, ToolDefinitionError
from ..events import Event, ToolProgress, current_run_listener
from ._loop import background_loop, run_sync
from .base import Tool
from .schema import python_identifier

if TYPE_CHECKING:
    import mcp_types

__all__ = ["MCPClient", "MCPTool", "MCPToolError", "MCPConnectionError", "ToolCollection", "ServerSpec"]

ServerSpec = Any
"""A `StdioServerParameters`, a dict with `command` or `url`, or a streamable-HTTP URL string."""
ProgressCallback = Callable[[float, "float | None", "str | None"], Awaitable[None]]

logger = logging.getLogger(__name__)

_STDERR_TAIL = 4000
_live_clients: weakref.WeakSet[MCPClient] = weakref.WeakSet()


class MCPConnectionError(CodeloopError):
    """An MCP server could not be started or reached; the message holds what it printed to stderr."""


class MCPToolError(AgentToolExecutionError):
    """An MCP tool call failed: the tool reported an error, timed out, or its server broke the connection."""


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise ImportError("MCP support needs the official MCP SDK: pip install 'codeloop[mcp]'") from exc


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while hasattr(exc, "exceptions") and isinstance(exc.exceptions, tuple) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe_error(exc: BaseException) -> str:
    leaf = _leaf(exc)
    text = str(leaf).strip()
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


class _Server:
    """One MCP server: how to reach it, and its live connection on the background loop."""

    def __init__(self, spec: ServerSpec, *, connect_timeout: float, call_timeout: float | None) -> None:
        from mcp import StdioServerParameters

        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.stdio: StdioServerParameters | None = None
        self.url: str | None = None
        self.transport = "stdio"
        self.headers: dict[str, str] = {}
        if isinstance(spec, StdioServerParameters):
            self.stdio = spec
        elif isinstance(spec, str) and spec.startswith(("http://", "https://")):
            self.url, self.transport = spec, "streamable-http"
        elif isinstance(spec, Mapping) and "command" in spec:
            allowed = {"command", "args", "env", "cwd"}
            unknown = set(spec) - allowed - {"transport"}
            if unknown:
                raise TypeError(
                    f"unknown keys {sorted(unknown)} in MCP server {dict(spec)!r}; use {sorted(allowed)}"
                )
            self.stdio = StdioServerParameters(**{k: v for k, v in spec.items() if k in allowed})
        elif isinstance(spec, Mapping) and "url" in spec:
            self.url = str(spec["url"])
            self.transport = str(spec.get("transport", "streamable-http")).replace("_", "-")
            if self.transport not in ("streamable-http", "sse"):
                raise ValueError(
                    f"MCP transport {self.transport!r} is not supported; use 'streamable-http' or 'sse' "
                    "(or give a command for stdio)"
                )
            self.headers = dict(spec.get("headers") or {})
        else:
            raise TypeError(
                f"cannot use {spec!r} as an MCP server: give StdioServerParameters, a dict with 'command' "
                "(and 'args', 'env') for a local server, a dict with 'url' (and 'transport'), or an http(s) URL"
            )
        self.label = (
            " ".join([self.stdio.command, *self.stdio.args]) if self.stdio is not None else str(self.url)
        )
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stderr: IO[str] | None = None
        self._lock: asyncio.Lock | None = None

    # --- connection lifecycle, always on the background loop -------------------------------------------

    def _transport(self) -> Any:
        if self.stdio is not None:
            from mcp.client.stdio import stdio_client

            if self._stderr is not None:
                self._stderr.close()
            # A real file: the child writes its stderr straight into it, kept for error messages.
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            return stdio_client(self.stdio, errlog=self._stderr)
        if self.transport == "sse":
            from mcp.client.sse import sse_client

            return sse_client(self.url or "", headers=self.headers or None)
        from mcp.client.streamable_http import streamable_http_client

        if self.headers:
            from mcp.shared._httpx_utils import create_mcp_http_client

            return streamable_http_client(
                self.url or "", http_client=create_mcp_http_client(headers=self.headers)
            )
        return streamable_http_client(self.url or "")

    def stderr_tail(self) -> str:
        """The last lines the server process wrote to stderr (stdio servers only)."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read()
        except (OSError, ValueError):
            return ""
        return text[-_STDERR_TAIL:].strip()

    async def _run(self, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        from mcp import Client

        try:
            async with Client(self._transport()) as client:
                if not ready.done():
                    ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # reported to whoever is waiting for the connection
            if not ready.done():
                ready.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _alive(self) -> bool:
        if self._client is None or self._runner is None or self._runner.done():
            return False
        # The SDK marks its dispatcher closed once the transport ends (process exit, stream closed); a call
        # on it would fail without reaching the server, so the connection is replaced before calling.
        dispatcher = getattr(getattr(self._client, "session", None), "_dispatcher", None)
        return not getattr(dispatcher, "_closed", False)

    async def connect(self) -> Any:
        """The live client, (re)connecting first when there is none or it has died."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._alive():
                return self._client
            await self._close_now()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[Any] = loop.create_future()
            self._stop = asyncio.Event()
            self._runner = loop.create_task(self._run(ready, self._stop))
            try:
                self._client = await asyncio.wait_for(asyncio.shield(ready), self.connect_timeout)
            except BaseException as exc:
                await self._close_now()
                raise self._connection_error(exc) from None
            return self._client

    def _connection_error(self, exc: BaseException) -> MCPConnectionError:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            what = f"did not answer the MCP handshake within {self.connect_timeout:g} s"
        elif isinstance(_leaf(exc), FileNotFoundError) and self.stdio is not None:
            what = f"could not be started: command {self.stdio.command!r} was not found"
        else:
            what = f"failed to start or connect ({_describe_error(exc)})"
        message = f"MCP server '{self.label}' {what}."
        tail = self.stderr_tail()
        if tail:
            message += f"\nIts stderr:\n{tail}"
        return MCPConnectionError(message)

    async def _close_now(self) -> None:
        client, runner, stop = self._client, self._runner, self._stop
        self._client = self._runner = self._stop = None
        if stop is not None:
            stop.set()
        if runner is not None and not runner.done():
            try:
                await asyncio.wait_for(asyncio.shield(runner), 10)
            except BaseException:  # a transport that will not shut down cleanly is abandoned, not fatal
                runner.cancel()
        del client  # dropped with the runner that owned it

    async def close(self) -> None:
        """Stop the server process (stdio) or end the session (HTTP)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._close_now()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def list_tools(self) -> list[mcp_types.Tool]:
        """Every tool the server offers, across pages."""
        client = await self.connect()
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call(
        self, tool_name: str, arguments: dict[str, Any], progress: ProgressCallback | None = None
    ) -> mcp_types.CallToolResult:
        """Call a tool; connection trouble and timeouts become `MCPToolError`s naming the server.

        `progress` receives the server's progress notifications for this call, as they arrive.
        """
        from mcp import MCPError

        try:
            client = await self.connect()
        except MCPConnectionError as exc:
            raise MCPToolError(f"Cannot call MCP tool '{tool_name}': {exc}") from None
        try:
            return await client.call_tool(
                tool_name, arguments, read_timeout_seconds=self.call_timeout, progress_callback=progress
            )
        except MCPError as exc:
            from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

            if exc.code == REQUEST_TIMEOUT:
                # The server may still be busy with the call; a fresh connection is the only sure way on.
                await self._reset_quietly()
                raise MCPToolError(
                    f"MCP tool '{tool_name}' did not answer within {self.call_timeout:g} s; "
                    f"the connection to '{self.label}' was reset."
                ) from None
            broken = exc.code == CONNECTION_CLOSED or not self._alive()
            if broken:
                tail = self.stderr_tail()
                detail = f"\nIts stderr:\n{tail}" if tail else ""
                await self._reset_quietly()
                again = "restarted" if self.stdio is not None else "reconnected"
                raise MCPToolError(
                    f"MCP server '{self.label}' closed the connection during the call to '{tool_name}' "
                    f"({exc}). It will be {again} on the next call.{detail}"
                ) from None
            raise MCPToolError(f"MCP tool '{tool_name}' failed: {exc}") from None
        except (TimeoutError, asyncio.TimeoutError):
            await self._reset_quietly()
            raise MCPToolError(
                f"MCP tool '{tool_name}' did not answer within {self.call_timeout:g} s; "
                f"the connection to '{self.label}' was reset."
            ) from None
        except Exception as exc:
            await self._reset_quietly()
            raise MCPToolError(
                f"MCP tool '{tool_name}' on '{self.label}' failed: {_describe_error(exc)}. "
                "The connection was reset and will be reopened on the next call."
            ) from None

    async def _reset_quietly(self) -> None:
        if self._lock is None:
            return
        async with self._lock:
            await self._close_now()


class MCPTool(Tool):
    """One tool of an MCP server. Calling it sends `tools/call` to the server; it runs there, not here.

    Progress the server reports during a call becomes a `ToolProgress` event handed to the agent run making
    the call (its console and listeners) and to each of `event_listeners`.
    """

    unshareable_reason = (
        "comes from an MCP server and runs there; share the server's command or URL instead of the tool."
    )

    def __init__(
        self,
        server: _Server,
        spec: mcp_types.Tool,
        *,
        name: str | None = None,
        structured: bool = True,
        event_listeners: Sequence[Callable[[Event], None]] = (),
    ):
        from .schema import clean_schema, tool_inputs_from_schema

        self.event_listeners: list[Callable[[Event], None]] = list(event_listeners)
        self._server = server
        self.remote_name = spec.name
        self.name = name or python_identifier(spec.name)
        self.description = (spec.description or spec.title or f"The MCP tool {spec.name}.").strip()
        schema = clean_schema(dict(spec.input_schema or {}))
        self.inputs = tool_inputs_from_schema(schema)
        if schema.get("$defs"):
            self.input_defs = schema["$defs"]
        required = set(schema.get("required") or [])
        self._optional = {a for a in self.inputs if a not in required}
        output_schema = dict(spec.output_schema) if structured and spec.output_schema else None
        self.output_schema = clean_schema(output_schema) if output_schema else None
        self.output_type = "object" if self.output_schema else "string"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the tool on its server (positional arguments map to the inputs in order)."""
        return run_sync(self._remote(self._arguments(args, kwargs), current_run_listener()))

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the call; the request itself runs on the background loop that owns the connection."""
        future = asyncio.run_coroutine_threadsafe(
            self._remote(self._arguments(args, kwargs), current_run_listener()), background_loop()
        )
        return await asyncio.wrap_future(future)

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = list(self.inputs)
        if len(args) > len(names):
            raise TypeError(f"{self.name}() takes {len(names)} arguments but {len(args)} were given")
        merged = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in merged:
                raise TypeError(f"{self.name}() got multiple values for argument '{key}'")
            merged[key] = value
        return {k: v for k, v in merged.items() if not (v is None and k in self._optional)}

    def _progress_reporter(self, run_listener: Callable[[Event], None] | None) -> ProgressCallback:
        # Made in the caller's thread, which knows the agent run the call is for; called on the background loop.
        async def report(progress: float, total: float | None, message: str | None) -> None:
            event = ToolProgress(self.name, progress, total, message)
            listeners = [*self.event_listeners, run_listener] if run_listener else list(self.event_listeners)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # a listener that fails must not fail the tool call it watches
                    logger.exception("a listener failed on %r", event)

        return report

    async def _remote(self, arguments: dict[str, Any], run_listener: Callable[[Event], None] | None) -> Any:
        result = await self._server.call(self.remote_name, arguments, self._progress_reporter(run_listener))
        text = _content_text(result.content)
        if result.is_error:
            raise MCPToolError(f"MCP tool '{self.remote_name}' reported an error: {text or '(no message)'}")
        if self.output_schema is not None and result.structured_content is not None:
            return result.structured_content
        if all(getattr(block, "type", None) == "text" for block in result.content):
            return text
        return [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]


def _content_text(blocks: Sequence[Any]) -> str:
    parts = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(getattr(block, "resource", None), "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind} content: {getattr(block, 'mime_type', None) or 'binary'}]")
    return "\n".join(parts)


class MCPClient:
    """Connects to one or more MCP servers and hands out their tools.

    Use it as a context manager (`with MCPClient(server) as tools:` / `async with ...`), or call
    `connect()` / `get_tools()` / `disconnect()` yourself. Tool names are made valid Python identifiers;
    the same name on two servers is an error naming both (pass `tool_name_prefixes` to tell them apart).
    """

    def __init__(
        self,
        server_parameters: ServerSpec | Sequence[ServerSpec],
        *,
        connect_timeout: float = 30.0,
        call_timeout: float | None = 300.0,
        structured_output: bool = True,
        tool_name_prefixes: Sequence[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        """`on_event`, when given, receives every tool's `ToolProgress` events (agents add their own)."""
        _require_mcp()
        specs = (
            list(server_parameters) if isinstance(server_parameters, list | tuple) else [server_parameters]
        )
        if not specs:
            raise ValueError("MCPClient needs at least one server")
        if tool_name_prefixes is not None and len(tool_name_prefixes) != len(specs):
            raise ValueError("tool_name_prefixes needs one prefix per server")
        self._servers = [
            _Server(s, connect_timeout=connect_timeout, call_timeout=call_timeout) for s in specs
        ]
        self._prefixes = list(tool_name_prefixes) if tool_name_prefixes else [""] * len(specs)
        self.structured_output = structured_output
        self.on_event = on_event
        self._tools: list[Tool] | None = None
        self._lock = threading.Lock()

    # --- async API ----------------------------------------------------------------------------------------

    async def aconnect(self) -> list[Tool]:
        """Connect to every server (concurrently) and return all their tools."""
        future = asyncio.run_coroutine_threadsafe(self._connect_all(), background_loop())
        return await asyncio.wrap_future(future)

    async def adisconnect(self) -> None:
        """Close every connection (stdio servers are stopped)."""
        future = asyncio.run_coroutine_threadsafe(self._close_all(), background_loop())
        await asyncio.wrap_future(future)

    async def __aenter__(self) -> list[Tool]:
        return await self.aconnect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.adisconnect()

    # --- sync API -----------------------------------------------------------------------------------------

    def connect(self) -> list[Tool]:
        """Connect to every server and return all their tools."""
        return run_sync(self._connect_all())

    def get_tools(self) -> list[Tool]:
        """The tools of every server, connecting first if needed."""
        return list(self._tools) if self._tools is not None else self.connect()

    def disconnect(self) -> None:
        """Close every connection (stdio servers are stopped). Safe to call twice."""
        run_sync(self._close_all())

    def __enter__(self) -> list[Tool]:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # --- shared -------------------------------------------------------------------------------------------

    async def _connect_all(self) -> list[Tool]:
        results = await asyncio.gather(*(s.list_tools() for s in self._servers), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._close_all()
            raise failures[0]
        tools: list[Tool] = []
        owners: dict[str, str] = {}
        for server, prefix, listed in zip(self._servers, self._prefixes, results, strict=True):
            assert not isinstance(listed, BaseException)
            for spec in listed:
                tool = MCPTool(
                    server,
                    spec,
                    name=prefix + python_identifier(spec.name),
                    structured=self.structured_output,
                    event_listeners=[self.on_event] if self.on_event is not None else (),
                )
                if tool.name in owners:
                    await self._close_all()
                    raise ToolDefinitionError(
                        f"Two MCP servers offer a tool named '{tool.name}': '{owners[tool.name]}' and "
                        f"'{server.label}'. Pass tool_name_prefixes=[...] to MCPClient to tell them apart."
                    )
                owners[tool.name] = server.label
                tools.append(tool)
        self._tools = tools
        _live_clients.add(self)
        return list(tools)

    async def _close_all(self) -> None:
        await asyncio.gather(*(s.close() for s in self._servers), return_exceptions=True)
        self._tools = None


class ToolCollection:
    """A named group of tools, e.g. everything one MCP server offers."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = list(tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    @classmethod
    @contextlib.contextmanager
    def from_mcp(
        cls,
        server_parameters: ServerSpec | Sequence[ServerSpec],
        *,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> Iterator[ToolCollection]:
        """The tools of one or more MCP servers for the duration of a `with` block.

        `trust_remote_code` is accepted for smolagents compatibility; MCP tools run on their server, not
        in this process, so nothing is trusted by loading them.
        """
        client = MCPClient(server_parameters, **kwargs)
        try:
            yield cls(client.connect())
        finally:
            client.disconnect()

    @classmethod
    @contextlib.asynccontextmanager
    async def afrom_mcp(
        cls, server_parameters: ServerSpec | Sequence[ServerSpec], **kwargs: Any
    ) -> AsyncIterator[ToolCollection]:
        """Async twin of `from_mcp`."""
        client = MCPClient(server_parameters, **kwargs)
        try:
            yield cls(await client.aconnect())
        finally:
            await client.adisconnect()


def tool_from_mcp(server_parameters: ServerSpec, tool_name: str, **kwargs: Any) -> MCPTool:
    """One tool of an MCP server, with its own connection (closed when the process exits).

    The tool keeps an `mcp_client` attribute; call `tool.mcp_client.disconnect()` to stop it earlier.
    """
    client = MCPClient(server_parameters, **kwargs)
    tools = client.connect()
    for candidate in tools:
        if isinstance(candidate, MCPTool) and tool_name in (candidate.remote_name, candidate.name):
            candidate.mcp_client = client  # type: ignore[attr-defined]
            return candidate
    client.disconnect()
    raise ToolDefinitionError(
        f"MCP server offers no tool named {tool_name!r}; it offers: {', '.join(t.name for t in tools) or 'none'}."
    )


@atexit.register
def _disconnect_all() -> None:
    """Stop stdio servers this process started, so none outlives it."""
    for client in list(_live_clients):
        with contextlib.suppress(Exception):
            client.disconnect()
