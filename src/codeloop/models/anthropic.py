"""`AnthropicModel`: Claude on the native Messages API via the official `anthropic` SDK (`codeloop[anthropic]`).

Native shapes throughout: the system prompt goes in `system`, tool calls are `tool_use` blocks, tool results
are `tool_result` blocks in a user turn, images are `image` blocks. Prompt caching marks the system prompt,
the tool definitions and the end of the conversation with `cache_control`, so each agent step re-reads the
previous prefix from the cache. Extended-thinking text goes to `ChatMessage.reasoning`, never into `content`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._extras import install_hint, is_installed
from ..errors import ModelConfigurationError
from .base import ChatMessage, StreamDelta, TokenUsage, ToolCall, ToolCallDelta, parse_arguments, trim_at_stop
from .reliability import RETRYABLE_STATUSES, ProviderFailure, StreamCutError, retry_after_seconds
from .remote import RemoteModel, atrim_stream, block_turns, resolve_api_key, trim_stream
from .structured import schema_of

__all__ = ["AnthropicModel", "to_anthropic_messages", "usage_from_anthropic"]

_CACHE = {"type": "ephemeral"}


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise ModelConfigurationError(
            f"AnthropicModel needs the `anthropic` package: {install_hint('anthropic')}"
        ) from exc
    return anthropic


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("url"):
        return {"type": "image", "source": {"type": "url", "url": part["url"]}}
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": part.get("mime_type") or "image/png",
            "data": part["data"],
        },
    }


def _content_blocks(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image":
            blocks.append(_image_block(part))
    return blocks


def _thinking_blocks(msg: ChatMessage) -> list[dict[str, Any]]:
    # With extended thinking on, Anthropic wants the signed thinking blocks of a tool-using turn sent back.
    # They live only in the SDK response kept in `raw`; a message rebuilt from JSON has none, and that is fine.
    blocks = []
    for block in getattr(msg.raw, "content", None) or []:
        kind = getattr(block, "type", None)
        if kind == "thinking":
            blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif kind == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": block.data})
    return blocks


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Neutral messages as Anthropic `(system blocks, messages)`; consecutive same-role turns are merged."""
    return block_turns(
        messages,
        _content_blocks,
        tool_result=lambda msg: {
            "type": "tool_result",
            "tool_use_id": msg.tool_call_id or "",
            "content": _content_blocks(msg.content) or [{"type": "text", "text": "(no output)"}],
        },
        tool_use=lambda call, arguments: {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": arguments,
        },
        assistant_prefix=_thinking_blocks,
    )


def usage_from_anthropic(usage: Any) -> TokenUsage | None:
    """Anthropic usage as `TokenUsage`; `input_tokens` becomes the whole prompt, cached parts included."""
    if usage is None:
        return None
    fresh = int(getattr(usage, "input_tokens", 0) or 0)
    read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    return TokenUsage(
        input_tokens=fresh + read + write,
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


class AnthropicModel(RemoteModel):
    """Claude through the Anthropic Messages API.

    Args:
        model_id: e.g. `"claude-sonnet-4-5"`.
        api_key: Defaults to `ANTHROPIC_API_KEY`; not required when `api_base` points elsewhere.
        api_base: Another endpoint speaking the Messages API (a proxy, a test server).
        max_tokens: Reply length cap, which the Messages API requires (default 8192).
        prompt_caching: Mark system prompt, tools and conversation end with `cache_control` (default on).
        thinking_budget: Turn on extended thinking with this many budget tokens; the thinking text lands in
            `ChatMessage.reasoning`.
        client_kwargs: Extra arguments for `anthropic.Anthropic(...)`.
        **kwargs: Retry options (see `RemoteModel`) and per-request options (`temperature`, ...).
    """

    provider = "anthropic"
    api_key_env = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        model_id: str,
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        max_tokens: int = 8192,
        prompt_caching: bool = True,
        thinking_budget: int | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not is_installed("anthropic"):  # say so now, not at the first (paid) call of a run
            _import_anthropic()
        super().__init__(model_id, **kwargs)
        self.api_base = api_base
        self.api_key = resolve_api_key(api_key, self.api_key_env, self.provider, required=api_base is None)
        self.max_tokens = max_tokens
        self.prompt_caching = prompt_caching
        self.thinking_budget = thinking_budget
        self.client_kwargs = dict(client_kwargs or {})

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "api_key": self.api_key or "not-needed",
            "max_retries": 0,
            "timeout": self.timeout,
        }
        if self.api_base:
            options["base_url"] = self.api_base
        options.update(self.client_kwargs)
        return options

    def create_client(self) -> Any:
        """An `anthropic.Anthropic` client (SDK retries off: the shared retry policy applies)."""
        return _import_anthropic().Anthropic(**self._options())

    def create_async_client(self) -> Any:
        """An `anthropic.AsyncAnthropic` client, likewise."""
        return _import_anthropic().AsyncAnthropic(**self._options())

    # -- request -----------------------------------------------------------------------------------------------
    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `messages.create` for this call."""
        system, turns = to_anthropic_messages(messages)
        request: dict[str, Any] = {"model": self.model_id, "max_tokens": self.max_tokens, "messages": turns}
        if system:
            if self.prompt_caching:
                system[-1] = {**system[-1], "cache_control": _CACHE}
            request["system"] = system
        if tools:
            specs = [
                {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
                }
                for t in tools
            ]
            if self.prompt_caching:
                specs[-1] = {**specs[-1], "cache_control": _CACHE}
            request["tools"] = specs
        if self.prompt_caching and turns:
            # Where compaction's masked part ends, the conversation stays the same until its next batch: a
            # breakpoint there is read back at every step of the batch, however much the steps after it add.
            hinted = [i for i, m in enumerate(messages) if m.cache_hint]
            if hinted:
                _, before = to_anthropic_messages(messages[: hinted[-1] + 1])
                if before and before[-1]["content"]:
                    turn = turns[len(before) - 1]["content"]
                    index = len(before[-1]["content"]) - 1
                    turn[index] = {**turn[index], "cache_control": _CACHE}
            # The end of the conversation is a breakpoint too: the next step reads all of it from the cache.
            last = turns[-1]["content"]
            last[-1] = {**last[-1], "cache_control": _CACHE}
        # Anthropic refuses whitespace-only stop sequences; those are trimmed client-side instead.
        sendable = [s for s in stop or [] if s.strip()]
        if sendable:
            request["stop_sequences"] = sendable
        if response_format is not None:
            _, schema = schema_of(response_format)
            request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if self.thinking_budget:
            request["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        request.update(self.generate_kwargs)
        return request

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """Anthropic SDK errors as `ProviderFailure`s (429, 5xx, 529 overloaded and connection errors retry)."""
        anthropic = _import_anthropic()
        if isinstance(exc, anthropic.APIStatusError):
            body = getattr(exc, "body", None)
            message = str(exc.message)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                message = str(body["error"].get("message") or message)
            return ProviderFailure(
                exc.status_code,
                message,
                retryable=exc.status_code in RETRYABLE_STATUSES,
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if isinstance(exc, (anthropic.APIConnectionError, anthropic.APITimeoutError)):
            return ProviderFailure(
                None, f"{exc} ({type(exc.__cause__).__name__}: {exc.__cause__})", retryable=True
            )
        if isinstance(exc, (json.JSONDecodeError, anthropic.APIResponseValidationError)):
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return super().classify_error(exc)

    def _message(self, response: Any, stop: list[str] | None) -> ChatMessage:
        text: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        for block in getattr(response, "content", None) or []:
            kind = getattr(block, "type", None)
            if kind == "text":
                text.append(block.text)
            elif kind == "thinking":
                thinking.append(block.thinking)
            elif kind == "tool_use":
                calls.append(ToolCall(block.id, block.name, parse_arguments(block.input)))
        content = trim_at_stop("".join(text), stop) if text else None
        return ChatMessage(
            role="assistant",
            content=content,
            tool_calls=calls,
            token_usage=usage_from_anthropic(getattr(response, "usage", None)),
            reasoning="".join(thinking) or None,
            raw=response,
        )

    # -- the four calls ------------------------------------------------------------------------------------------
    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply: text, `tool_use` blocks as tool calls, thinking as `reasoning`, usage with cache counts."""
        request = self.build_request(messages, stop, tools, response_format)
        response = self.retrier.call(lambda: self.client.messages.create(**request))
        return self._message(response, stop)

    async def agenerate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """Async twin of `generate`, on `AsyncAnthropic`."""
        request = self.build_request(messages, stop, tools, response_format)
        client = self._async_client()
        response = await self.retrier.acall(lambda: client.messages.create(**request))
        return self._message(response, stop)

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """Deltas from Anthropic's event stream; usage (with cache counts) on the last one."""
        request = {**self.build_request(messages, stop, tools, response_format), "stream": True}

        def open_stream() -> Iterator[StreamDelta]:
            reader = _EventReader()
            stream = self.client.messages.create(**request)
            try:
                for event in stream:
                    delta = reader.read(event)
                    if delta is not None:
                        yield delta
            finally:
                stream.close()
            reader.check_complete()

        yield from trim_stream(self.retrier.stream(open_stream), stop)

    async def agenerate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        """Async twin of `generate_stream`."""
        request = {**self.build_request(messages, stop, tools, response_format), "stream": True}
        client = self._async_client()

        async def open_stream() -> AsyncIterator[StreamDelta]:
            reader = _EventReader()
            stream = await client.messages.create(**request)
            try:
                async for event in stream:
                    delta = reader.read(event)
                    if delta is not None:
                        yield delta
            finally:
                await stream.close()
            reader.check_complete()

        async for delta in atrim_stream(self.retrier.astream(open_stream), stop):
            yield delta


class _EventReader:
    """Turns Anthropic stream events into `StreamDelta`s, numbering tool calls by their order."""

    def __init__(self) -> None:
        self.usage: Any = None
        self.output_tokens = 0
        self.tool_index: dict[int, int] = {}
        self.done = False

    def read(self, event: Any) -> StreamDelta | None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.usage = event.message.usage
            self.output_tokens = int(getattr(self.usage, "output_tokens", 0) or 0)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                index = self.tool_index.setdefault(event.index, len(self.tool_index))
                return StreamDelta(tool_calls=[ToolCallDelta(index=index, id=block.id, name=block.name)])
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return StreamDelta(content=delta.text)
            if delta.type == "thinking_delta":
                return StreamDelta(reasoning=delta.thinking)
            if delta.type == "input_json_delta" and event.index in self.tool_index:
                return StreamDelta(
                    tool_calls=[
                        ToolCallDelta(index=self.tool_index[event.index], arguments=delta.partial_json)
                    ]
                )
        elif kind == "message_delta":
            usage = getattr(event, "usage", None)
            self.output_tokens = int(getattr(usage, "output_tokens", 0) or self.output_tokens)
        elif kind == "message_stop":
            self.done = True
            final = usage_from_anthropic(self.usage) or TokenUsage()
            final.output_tokens = self.output_tokens
            return StreamDelta(token_usage=final)
        return None

    def check_complete(self) -> None:
        if not self.done:
            raise StreamCutError("the stream ended before message_stop")
