"""Neutral messages to and from the OpenAI Chat Completions shapes, and the adapter base built on them.

Shared by every adapter that speaks that format (OpenAI, Azure, OpenAI-compatible servers, Hugging Face
inference, LiteLLM). Response objects are read through `field()`, which accepts SDK objects and plain dicts.
`ChatCompletionsModel` holds the four calls those adapters have in common; each adapter supplies the request
and the SDK call.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any

from .base import ChatMessage, StreamDelta, TokenUsage, ToolCall, ToolCallDelta, parse_arguments, trim_at_stop
from .reliability import StreamCutError
from .remote import RemoteModel, atrim_stream, trim_stream, without_surrogates

__all__ = [
    "field",
    "to_openai_messages",
    "to_openai_tools",
    "to_openai_content",
    "usage_from_openai",
    "message_from_openai",
    "delta_from_openai",
    "error_message_from_openai",
    "deltas_from_openai_stream",
    "adeltas_from_openai_stream",
    "ChatCompletionsModel",
]


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` or `obj.name`, whichever exists (SDK objects and dicts alike); extra fields included."""
    if obj is None:
        return default
    if type(obj) is dict:
        return obj.get(name, default)
    # Attributes first: some SDK types are dict subclasses whose dict part lacks the extra fields.
    value = getattr(obj, name, None)
    if value is None and isinstance(obj, dict):
        value = obj.get(name)
    if value is None:
        extra = getattr(obj, "model_extra", None)
        if isinstance(extra, dict):
            value = extra.get(name)
    return default if value is None else value


def _image_url(part: dict[str, Any]) -> str:
    if part.get("url"):
        return str(part["url"])
    return f"data:{part.get('mime_type') or 'image/png'};base64,{part['data']}"


def to_openai_content(content: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
    """Neutral content as OpenAI content: text stays text, image parts become `image_url` parts."""
    if content is None or isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
        else:
            parts.append(dict(part))
    return parts


def _arguments_json(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Neutral messages as Chat Completions messages, with tool results as `tool` messages.

    The `tool` role carries text only; images a tool returned follow the run of tool messages in one user
    message, so the model still sees them and the assistant/tool pairing stays valid.
    """
    out: list[dict[str, Any]] = []
    pending_images: list[dict[str, Any]] = []

    def flush_images() -> None:
        if pending_images:
            out.append({"role": "user", "content": [*pending_images]})
            pending_images.clear()

    for msg in messages:
        if msg.role == "tool":
            if isinstance(msg.content, list):
                pending_images.extend(
                    {"type": "image_url", "image_url": {"url": _image_url(p)}}
                    for p in msg.content
                    if p.get("type") == "image"
                )
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id or "", "content": msg.text})
            continue
        flush_images()
        entry: dict[str, Any] = {"role": msg.role, "content": to_openai_content(msg.content)}
        if entry["content"] is None:
            # OpenAI accepts null content next to tool calls, but llama-cpp-python's server (and other strict
            # OpenAI-compatible servers) answer 500/422 to it; an empty string is valid everywhere.
            entry["content"] = ""
        if msg.role == "assistant" and msg.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments_json(call.arguments)},
                }
                for call in msg.tool_calls
            ]
        out.append(entry)
    flush_images()
    return without_surrogates(out)  # type: ignore[no-any-return]


def to_openai_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Neutral tool specs as OpenAI `tools`; specs already in OpenAI shape pass through."""
    if not tools:
        return None
    converted = []
    for spec in tools:
        if spec.get("type") == "function" and "function" in spec:
            converted.append(spec)
            continue
        converted.append(
            {
                "type": "function",
                "function": {
                    "name": spec["name"],
                    "description": spec.get("description", ""),
                    "parameters": spec.get("parameters") or {"type": "object", "properties": {}},
                },
            }
        )
    return converted


def usage_from_openai(usage: Any) -> TokenUsage | None:
    """A Chat Completions `usage` object as `TokenUsage`; cached and reasoning tokens included.

    `input_tokens` counts the whole prompt, cached part included (OpenAI's convention, which codeloop uses
    for every provider); `output_tokens` includes reasoning tokens.
    """
    if usage is None:
        return None
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    return TokenUsage(
        input_tokens=int(field(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(field(usage, "completion_tokens", 0) or 0),
        cache_read_tokens=int(field(prompt_details, "cached_tokens", 0) or 0),
        cache_write_tokens=int(field(prompt_details, "cache_write_tokens", 0) or 0),
        reasoning_tokens=int(field(completion_details, "reasoning_tokens", 0) or 0),
    )


def _reasoning_of(obj: Any) -> str | None:
    # OpenAI-compatible servers put reasoning text in one of these (DeepSeek/vLLM, OpenRouter).
    return field(obj, "reasoning_content") or field(obj, "reasoning") or None


def message_from_openai(completion: Any) -> ChatMessage:
    """The assistant message of a `chat.completion` object."""
    choices = field(completion, "choices") or []
    if not choices:
        raise ValueError(f"the response has no choices: {str(completion)[:300]}")
    message = field(choices[0], "message")
    calls = [
        ToolCall(
            id=field(call, "id") or f"call_{i}",
            name=field(field(call, "function"), "name", ""),
            arguments=parse_arguments(field(field(call, "function"), "arguments")),
        )
        for i, call in enumerate(field(message, "tool_calls") or [])
    ]
    reasoning = _reasoning_of(message)
    return ChatMessage(
        role="assistant",
        content=field(message, "content"),
        tool_calls=calls,
        token_usage=usage_from_openai(field(completion, "usage")),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        raw=completion,
    )


def delta_from_openai(chunk: Any) -> tuple[StreamDelta, bool]:
    """One `chat.completion.chunk` as a `StreamDelta`, and whether it carried a `finish_reason`."""
    usage = usage_from_openai(field(chunk, "usage"))
    choices = field(chunk, "choices") or []
    if not choices:
        return StreamDelta(token_usage=usage), False
    choice = choices[0]
    delta = field(choice, "delta")
    calls = [
        ToolCallDelta(
            index=int(field(call, "index", i)),
            id=field(call, "id"),
            name=field(field(call, "function"), "name"),
            arguments=field(field(call, "function"), "arguments", "") or "",
        )
        for i, call in enumerate(field(delta, "tool_calls") or [])
    ]
    reasoning = _reasoning_of(delta)
    return (
        StreamDelta(
            content=field(delta, "content") or None,
            tool_calls=calls,
            token_usage=usage,
            reasoning=reasoning if isinstance(reasoning, str) else None,
        ),
        field(choice, "finish_reason") is not None,
    )


def error_message_from_openai(exc: BaseException) -> str:
    """The provider's own words for an SDK error: `error.message` of an OpenAI-shaped JSON body, verbatim.

    SDKs (and LiteLLM) prefix the message with their own labels; the body, when there is one, has it bare.
    """
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", None) or exc)


def _worth_sending(delta: StreamDelta) -> bool:
    return bool(delta.content or delta.tool_calls or delta.token_usage or delta.reasoning)


def deltas_from_openai_stream(chunks: Iterable[Any]) -> Iterator[StreamDelta]:
    """The non-empty deltas of a `chat.completion.chunk` stream; `StreamCutError` if no chunk finished it."""
    finished = False
    for chunk in chunks:
        delta, done = delta_from_openai(chunk)
        finished = finished or done
        if _worth_sending(delta):
            yield delta
    if not finished:
        raise StreamCutError("the stream ended before the model finished its reply")


async def adeltas_from_openai_stream(chunks: AsyncIterable[Any]) -> AsyncIterator[StreamDelta]:
    """Async twin of `deltas_from_openai_stream`."""
    finished = False
    async for chunk in chunks:
        delta, done = delta_from_openai(chunk)
        finished = finished or done
        if _worth_sending(delta):
            yield delta
    if not finished:
        raise StreamCutError("the stream ended before the model finished its reply")


class ChatCompletionsModel(RemoteModel):
    """The four calls of an adapter whose provider speaks Chat Completions, retried and trimmed at `stop`.

    A subclass supplies `build_request` (the keyword arguments of one call) and the SDK call itself, sync
    (`create_completion`) and async (`acreate_completion`); with `stream=True` in the request those return
    the chunk stream instead of a `chat.completion`.
    """

    @abstractmethod
    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of the SDK call for this request."""

    @abstractmethod
    def create_completion(self, request: dict[str, Any]) -> Any:
        """The SDK call: a `chat.completion`, or the chunk stream when `request` asks to stream."""

    @abstractmethod
    def acreate_completion(self, request: dict[str, Any]) -> Awaitable[Any]:
        """Async twin of `create_completion`."""

    def close_stream(self, stream: Any) -> None:
        """Release a chunk stream once read; the default leaves that to the SDK."""

    async def aclose_stream(self, stream: Any) -> None:
        """Async twin of `close_stream`."""

    def _finish(self, completion: Any, stop: list[str] | None) -> ChatMessage:
        msg = message_from_openai(completion)
        if stop and isinstance(msg.content, str):
            # A no-op when the server honoured `stop`; needed when it was not sent, was ignored, or (TGI) the
            # stop sequence itself came back at the end of the text.
            msg.content = trim_at_stop(msg.content, stop)
        return msg

    def _stream_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        request = self.build_request(messages, stop, tools, response_format)
        request.update(stream=True, stream_options={"include_usage": True})
        return request

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply, with tool calls, reasoning and token usage."""
        request = self.build_request(messages, stop, tools, response_format)
        return self._finish(self.retrier.call(lambda: self.create_completion(request)), stop)

    async def agenerate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """Async twin of `generate`, on the SDK's async client."""
        request = self.build_request(messages, stop, tools, response_format)
        return self._finish(await self.retrier.acall(lambda: self.acreate_completion(request)), stop)

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """Text and tool-call deltas as they arrive; usage on the last delta. A cut stream raises."""
        request = self._stream_request(messages, stop, tools, response_format)

        def open_stream() -> Iterator[StreamDelta]:
            stream = self.create_completion(request)
            try:
                yield from deltas_from_openai_stream(stream)
            finally:
                self.close_stream(stream)

        yield from trim_stream(self.retrier.stream(open_stream), stop)

    async def agenerate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        """Async twin of `generate_stream`, on the SDK's async client."""
        request = self._stream_request(messages, stop, tools, response_format)

        async def open_stream() -> AsyncIterator[StreamDelta]:
            stream = await self.acreate_completion(request)
            try:
                async for delta in adeltas_from_openai_stream(stream):
                    yield delta
            finally:
                await self.aclose_stream(stream)

        async for delta in atrim_stream(self.retrier.astream(open_stream), stop):
            yield delta
