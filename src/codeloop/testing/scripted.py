"""`ScriptedModel`: an in-process model that replays a script, for unit tests.

A script is a list of replies or a function of the request. A reply is one of:
  - a string: the assistant's text;
  - a dict: {"content": str | None, "tool_calls": [{"name": ..., "arguments": {...} | "raw json", "id"?: ...}],
             "usage": {"input_tokens": .., "output_tokens": ..}, "reasoning": str}
  - a `ChatMessage`.
The same reply shapes drive the scripted HTTP server (`codeloop.testing.server`), so a script written for one
runs on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.base import (
    ApiModel,
    ChatMessage,
    StreamDelta,
    TokenUsage,
    ToolCall,
    message_to_delta,
    parse_arguments,
)

__all__ = ["Reply", "ScriptRequest", "ScriptedModel", "ScriptExhausted", "normalize_reply"]

Reply = str | dict[str, Any] | ChatMessage


@dataclass
class ScriptRequest:
    """What a script function is shown: the messages and options of one model call."""

    messages: list[ChatMessage]
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    index: int = 0
    """How many calls came before this one."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The wire request body, when the script runs behind the HTTP server."""


class ScriptExhausted(RuntimeError):
    """The model was called more times than the script has replies."""


def normalize_reply(reply: Reply, index: int = 0, prompt_chars: int = 40) -> ChatMessage:
    """Turn any accepted reply shape into an assistant `ChatMessage`.

    Replies without explicit usage get a deterministic estimate: one token per 4 characters of the prompt
    (`prompt_chars`) and of the reply.
    """
    if isinstance(reply, ChatMessage):
        return reply
    if isinstance(reply, str):
        return ChatMessage(role="assistant", content=reply, token_usage=_estimate_usage(reply, prompt_chars))
    if not isinstance(reply, dict):
        raise TypeError(f"a scripted reply must be str, dict or ChatMessage, got {type(reply).__name__}")
    calls = []
    for i, call in enumerate(reply.get("tool_calls") or []):
        args = call.get("arguments", {})
        calls.append(
            ToolCall(
                id=call.get("id") or f"call_{index}_{i}",
                name=call["name"],
                arguments=parse_arguments(args) if isinstance(args, str) else dict(args),
            )
        )
    content = reply.get("content")
    usage = reply.get("usage")
    return ChatMessage(
        role="assistant",
        content=content,
        tool_calls=calls,
        token_usage=TokenUsage.from_dict(usage) if usage else _estimate_usage(content or "", prompt_chars),
        reasoning=reply.get("reasoning"),
    )


def _estimate_usage(text: str, prompt_chars: int) -> TokenUsage:
    # Deterministic stand-in for a tokenizer so usage sums are testable: one token per 4 characters.
    return TokenUsage(input_tokens=max(1, prompt_chars // 4), output_tokens=max(1, len(text) // 4))


class ScriptedModel(ApiModel):
    """A deterministic model for tests: replays `script` and records every request in `requests`."""

    supports_response_format = True

    def __init__(
        self,
        script: Sequence[Reply] | Callable[[ScriptRequest], Reply],
        model_id: str = "scripted",
        stream_chunk_size: int = 8,
    ) -> None:
        super().__init__(model_id)
        self.script = script
        self.requests: list[ScriptRequest] = []
        self.stream_chunk_size = stream_chunk_size

    def _next(self, request: ScriptRequest) -> ChatMessage:
        index = len(self.requests)
        request.index = index
        self.requests.append(request)
        chars = sum(len(m.text) for m in request.messages)
        if callable(self.script):
            return normalize_reply(self.script(request), index, chars)
        if index >= len(self.script):
            raise ScriptExhausted(
                f"the script has {len(self.script)} replies; call {index + 1} asked for another"
            )
        return normalize_reply(self.script[index], index, chars)

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """The next scripted reply."""
        return self._next(ScriptRequest(list(messages), stop, tools, response_format))

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """The next scripted reply, cut into small text chunks; usage on the last one."""
        msg = self.generate(messages, stop=stop, tools=tools, response_format=response_format)
        text = msg.text
        size = self.stream_chunk_size
        for start in range(0, len(text), size):
            yield StreamDelta(content=text[start : start + size])
        # Tool calls, usage and reasoning come last, as real APIs send them.
        yield message_to_delta(msg)
