"""Effects: the I/O the agent loop asks for, and how the sync and async drivers perform it.

The loop (in `agents.py`) never calls a model, an executor or a tool itself. It yields an effect and receives
the result; keeping the I/O here is what lets one loop serve `run`, `arun`, `run(stream=True)` and `astream`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

from . import events as ev
from . import telemetry
from ._text import encodable_data
from ._threads import block_interrupts, start_thread
from .errors import AgentGenerationError
from .models.base import ChatMessage, Model, StreamDelta, ToolCall, collect_stream

__all__ = [
    "CallModel",
    "RunCode",
    "CallTools",
    "AwaitApproval",
    "Done",
    "Effect",
    "perform",
    "aperform",
    "sendable_messages",
]


@dataclass
class CallModel:
    """Ask the model for a reply to `messages`; streamed replies also yield text-delta events."""

    messages: list[ChatMessage]
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    model: Model | None = None
    """The model to ask; None means the agent's (a context summariser may use another)."""


@dataclass
class RunCode:
    """Run a code action in the agent's executor; the result is an `ExecutionResult`."""

    code: str
    attach_output: Callable[[Callable[[str], None] | None], None] | None = None
    """When set, installs (or, given None, removes) a callback that receives printed text while the code
    runs; the drivers then run the code in a worker thread and yield `ExecutionLog` events as text arrives."""


@dataclass
class CallTools:
    """Run tool calls concurrently; the result lists each output (or the exception it raised) in order."""

    calls: list[tuple[ToolCall, Any, dict[str, Any]]]
    """(call, tool, validated arguments) triples."""


@dataclass
class AwaitApproval:
    """Wait for a person's decisions on `pending` calls (`codeloop.approval.PendingCall`).

    The drivers never perform it: they pause the run (`state == "awaiting_approval"`) and `agent.resume` sends the
    decisions back in as its result, a JSON-able dict `{call_id: True | "reason to deny"}` that may cover only
    some of the calls. `step` is the action step in progress, shown in the paused result.
    """

    pending: list[Any]
    step: Any = None


@dataclass
class Done:
    """Carries an effect's result out of `perform`/`aperform`, after any events they yielded."""

    value: Any


Effect: TypeAlias = CallModel | RunCode | CallTools | AwaitApproval


def perform(effect: Effect, model: Model, run_code: Callable[[str], Any]) -> Iterator[ev.Event | Done]:
    """Perform `effect` synchronously: yields events as they happen, then one `Done` with the result."""
    if isinstance(effect, CallModel):
        kwargs = _model_kwargs(effect)
        model = effect.model or model  # a summariser may use another model than the agent's
        with telemetry.model_call(model, effect.messages) as span:
            try:
                messages = sendable_messages(effect.messages)
                if not effect.stream:
                    reply = model.generate(messages, **kwargs)
                else:
                    deltas: list[StreamDelta] = []
                    for delta in model.generate_stream(messages, **kwargs):
                        deltas.append(delta)
                        if delta.content:
                            yield ev.ModelTextDelta(delta.content)
            except Exception as exc:
                raise _as_generation_error(model, exc) from exc
            if effect.stream:
                reply = collect_stream(deltas)
            span.finished(reply)
        yield Done(reply)
    elif isinstance(effect, RunCode):
        with telemetry.code_execution(effect.code) as span:
            if effect.attach_output is None:
                result = run_code(effect.code)
            else:
                for out in _run_code_streaming(effect, run_code):
                    if isinstance(out, Done):
                        result = out.value
                    else:
                        yield out
            span.finished(result)
        yield Done(result)
    elif isinstance(effect, CallTools):
        yield Done(_run_tools_threaded(effect.calls))
    else:
        raise TypeError(
            f"{type(effect).__name__} is answered by the driver (it pauses the run), not performed"
        )


async def aperform(
    effect: Effect, model: Model, run_code: Callable[[str], Any]
) -> AsyncIterator[ev.Event | Done]:
    """Async twin of `perform`: model calls are awaited, code runs in a worker thread, tools concurrently."""
    if isinstance(effect, CallModel):
        kwargs = _model_kwargs(effect)
        model = effect.model or model  # a summariser may use another model than the agent's
        with telemetry.model_call(model, effect.messages) as span:
            try:
                messages = sendable_messages(effect.messages)
                if not effect.stream:
                    reply = await model.agenerate(messages, **kwargs)
                else:
                    deltas: list[StreamDelta] = []
                    async for delta in model.agenerate_stream(messages, **kwargs):
                        deltas.append(delta)
                        if delta.content:
                            yield ev.ModelTextDelta(delta.content)
            except Exception as exc:
                raise _as_generation_error(model, exc) from exc
            if effect.stream:
                reply = collect_stream(deltas)
            span.finished(reply)
        yield Done(reply)
    elif isinstance(effect, RunCode):
        with telemetry.code_execution(effect.code) as span:
            result = None
            async for out in _arun_code(effect, run_code):
                if isinstance(out, Done):
                    result = out.value
                else:
                    yield out
            span.finished(result)
        yield Done(result)
    elif not isinstance(effect, CallTools):
        raise TypeError(
            f"{type(effect).__name__} is answered by the driver (it pauses the run), not performed"
        )
    else:
        results = await asyncio.gather(
            *(_acall_tool(tool, args) for _, tool, args in effect.calls), return_exceptions=True
        )
        yield Done(list(results))


async def _arun_code(effect: RunCode, run_code: Callable[[str], Any]) -> AsyncIterator[ev.Event | Done]:
    if effect.attach_output is None:
        yield Done(await asyncio.to_thread(run_code, effect.code))
        return
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[Any] = asyncio.Queue()

    def forward(text: str) -> None:
        loop.call_soon_threadsafe(chunks.put_nowait, text)

    async def run_then_end() -> Any:
        try:
            return await asyncio.to_thread(run_code, effect.code)
        finally:  # queued after every chunk the thread forwarded, so none is lost
            chunks.put_nowait(_END)

    effect.attach_output(forward)
    try:
        task = asyncio.ensure_future(run_then_end())
        while (item := await chunks.get()) is not _END:
            yield ev.ExecutionLog(item)
    finally:
        effect.attach_output(None)
    yield Done(await task)


_END = object()


def _run_code_streaming(effect: RunCode, run_code: Callable[[str], Any]) -> Iterator[ev.Event | Done]:
    assert effect.attach_output is not None
    chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = run_code(effect.code)
        except BaseException as exc:  # re-raised in the driver's thread below
            outcome["error"] = exc
        finally:
            chunks.put(_END)

    effect.attach_output(chunks.put)
    try:
        start_thread(contextvars.copy_context().run, work, name="codeloop-run-code")
        while (item := chunks.get()) is not _END:
            yield ev.ExecutionLog(item)
    finally:
        effect.attach_output(None)
    if "error" in outcome:
        raise outcome["error"]
    yield Done(outcome["value"])


def sendable_messages(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages with every text made encodable (lone surrogates -> U+FFFD), ready to leave the process.

    Agent code may print anything, and a model's JSON may carry `\\udcff` escapes; memory keeps the text as it
    came, and only the copy sent to the model is repaired, so a provider's UTF-8 encoder never fails on it.
    """
    out = []
    for message in messages:
        calls = [
            call if (args := encodable_data(call.arguments)) is call.arguments and call.name.isascii()
            else dataclasses.replace(call, name=encodable_data(call.name), arguments=args)
            for call in message.tool_calls
        ]  # fmt: skip
        changes = {
            key: new
            for key, old, new in (
                ("content", message.content, encodable_data(message.content)),
                ("reasoning", message.reasoning, encodable_data(message.reasoning)),
                ("name", message.name, encodable_data(message.name)),
            )
            if new is not old
        }
        if any(a is not b for a, b in zip(calls, message.tool_calls, strict=True)):
            changes["tool_calls"] = calls
        out.append(dataclasses.replace(message, **changes) if changes else message)
    return out


def _model_kwargs(effect: CallModel) -> dict[str, Any]:
    return {"stop": effect.stop, "tools": effect.tools, "response_format": effect.response_format}


def _run_tools_threaded(calls: list[tuple[ToolCall, Any, dict[str, Any]]]) -> list[Any]:
    from .approval import ApprovalRequired

    def run_one(item: tuple[ToolCall, Any, dict[str, Any]]) -> Any:
        try:
            return item[1](**item[2])
        except (
            Exception,
            ApprovalRequired,
        ) as exc:  # handed back as this call's result; the others still run
            return exc

    if len(calls) == 1:
        return [run_one(calls[0])]
    with ThreadPoolExecutor(max_workers=min(len(calls), 16), initializer=block_interrupts) as pool:
        # Each call runs in a copy of this context, so tools see the run they work for (progress reports).
        futures = [pool.submit(contextvars.copy_context().run, run_one, call) for call in calls]
        return [future.result() for future in futures]


async def _acall_tool(tool: Any, args: dict[str, Any]) -> Any:
    acall = getattr(tool, "acall", None)
    if acall is not None:
        return await acall(**args)
    return await asyncio.to_thread(tool, **args)


def _as_generation_error(model: Any, exc: Exception) -> Exception:
    if isinstance(exc, AgentGenerationError):
        return exc
    return AgentGenerationError(
        f"model {getattr(model, 'model_id', model)!r} failed: {type(exc).__name__}: {exc}"
    )
