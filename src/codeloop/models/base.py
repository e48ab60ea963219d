"""The model contract: neutral message types, the `Model` protocol and a base class with shared plumbing.

Messages are provider-neutral. Each adapter translates them to its provider's native shapes (OpenAI's
`tool` role, Anthropic's `tool_use`/`tool_result` blocks, ...), never flattening tool results into user text.

Content is either a string or a list of parts, each a JSON-friendly dict:
  {"type": "text", "text": "..."}
  {"type": "image", "data": "<base64>", "mime_type": "image/png"}   (or {"type": "image", "url": "https://..."})
Tools are passed to models as neutral function specs: {"name", "description", "parameters": <JSON Schema>}.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .._threads import start_thread

__all__ = [
    "Role",
    "TokenUsage",
    "ToolCall",
    "ToolCallDelta",
    "ChatMessage",
    "StreamDelta",
    "Model",
    "ApiModel",
    "collect_stream",
    "message_to_delta",
    "trim_at_stop",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class TokenUsage:
    """Tokens one model call (or a whole run, when summed) consumed."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage | None) -> TokenUsage:
        if other is None:
            return TokenUsage(**self.to_dict())
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dict."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TokenUsage | None:
        """Inverse of `to_dict`; `None` stays `None`."""
        return None if data is None else cls(**{k: int(v) for k, v in data.items() if k in _USAGE_KEYS})


_USAGE_KEYS = frozenset(TokenUsage().to_dict())


@dataclass
class ToolCall:
    """One tool call the model asked for.

    `arguments` is a dict when the model sent valid JSON; otherwise the raw string, which the agent reports
    back to the model as a fixable error.
    """

    id: str
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        """Inverse of `to_dict`."""
        return cls(id=data["id"], name=data["name"], arguments=data.get("arguments", {}))


@dataclass
class ChatMessage:
    """One message in a conversation, in or out of a model."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    """For `role="tool"`: the id of the call this message answers."""
    name: str | None = None
    """For `role="tool"`: the tool's name (some providers want it)."""
    token_usage: TokenUsage | None = None
    reasoning: str | None = None
    """Reasoning/thinking text the provider returned beside the answer; never part of `content`."""
    raw: Any = field(default=None, repr=False, compare=False)
    """The provider's own response object, for debugging; not serialized."""
    cache_hint: bool = field(default=False, repr=False, compare=False)
    """The conversation up to here stays the same for several requests (context compaction marks where its
    masked part ends): providers with explicit prompt caching (Anthropic) put a cache breakpoint here. Not
    serialized."""

    @property
    def text(self) -> str:
        """The text of `content`, with image parts left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without `raw`)."""
        return {
            "role": self.role,
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "token_usage": self.token_usage.to_dict() if self.token_usage else None,
            "reasoning": self.reasoning,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        """Inverse of `to_dict`."""
        return cls(
            role=data["role"],
            content=data.get("content"),
            tool_calls=[ToolCall.from_dict(c) for c in data.get("tool_calls") or []],
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            token_usage=TokenUsage.from_dict(data.get("token_usage")),
            reasoning=data.get("reasoning"),
        )


@dataclass
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with the same `index` belong together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class StreamDelta:
    """One chunk of a streamed reply. Usage, when the provider reports it, comes on the last chunk."""

    content: str | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    token_usage: TokenUsage | None = None
    reasoning: str | None = None


def collect_stream(deltas: list[StreamDelta]) -> ChatMessage:
    """Fold streamed chunks into the one `ChatMessage` they spell."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: TokenUsage | None = None
    for d in deltas:
        if d.content:
            text.append(d.content)
        if d.reasoning:
            reasoning.append(d.reasoning)
        for tc in d.tool_calls:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.name:
                slot["name"] += tc.name
            slot["arguments"] += tc.arguments
        if d.token_usage is not None:
            usage = d.token_usage if usage is None else usage + d.token_usage
    tool_calls = []
    for index in sorted(calls):
        slot = calls[index]
        tool_calls.append(
            ToolCall(
                id=slot["id"] or f"call_{index}",
                name=slot["name"],
                arguments=parse_arguments(slot["arguments"]),
            )
        )
    return ChatMessage(
        role="assistant",
        content="".join(text) or None,
        tool_calls=tool_calls,
        token_usage=usage,
        reasoning="".join(reasoning) or None,
    )


def message_to_delta(msg: ChatMessage, content: str | None = None) -> StreamDelta:
    """One delta carrying `msg`'s tool calls, usage and reasoning, with `content` as its text.

    For models that learn the whole reply at once: they send it (or its last piece) as a single delta.
    """
    return StreamDelta(
        content=content,
        tool_calls=[
            ToolCallDelta(
                index=i,
                id=c.id,
                name=c.name,
                arguments=c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments),
            )
            for i, c in enumerate(msg.tool_calls)
        ],
        token_usage=msg.token_usage,
        reasoning=msg.reasoning,
    )


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any] | str:
    """Tool-call arguments as a dict, or the raw string when it is not a JSON object."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, dict) else raw


def trim_at_stop(text: str, stop: list[str] | None) -> str:
    """Cut `text` at the first stop sequence, for models whose API rejects `stop`."""
    if not stop or not text:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


@runtime_checkable
class Model(Protocol):
    """What the agent loop needs from a model. Every adapter implements all four methods."""

    model_id: str

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply to `messages`."""
        ...

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """The reply as it is produced; usage arrives on the last delta."""
        ...

    async def agenerate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """Async twin of `generate`."""
        ...

    def agenerate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        """Async twin of `generate_stream`."""
        ...


class ApiModel(ABC):
    """Shared plumbing for adapters: an adapter must implement `generate`; the rest has working defaults.

    The default `generate_stream` yields the whole reply as one delta; the default async twins run the sync
    methods in a worker thread. Adapters with native streaming or async clients override them.
    """

    model_id: str = ""

    def __init__(self, model_id: str, **kwargs: Any) -> None:
        self.model_id = model_id
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"

    @abstractmethod
    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply to `messages`; every adapter implements it."""

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """Non-streaming fallback: the whole reply as one delta."""
        msg = self.generate(messages, stop=stop, tools=tools, response_format=response_format)
        yield message_to_delta(msg, msg.text or None)

    async def agenerate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """Runs `generate` in a worker thread."""
        return await asyncio.to_thread(
            self.generate, messages, stop=stop, tools=tools, response_format=response_format
        )

    async def agenerate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        """Drives the sync `generate_stream` in a worker thread, handing chunks over as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def pump() -> None:
            try:
                for delta in self.generate_stream(
                    messages, stop=stop, tools=tools, response_format=response_format
                ):
                    loop.call_soon_threadsafe(queue.put_nowait, ("delta", delta))
            except BaseException as exc:  # handed to the awaiting side, not swallowed
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        start_thread(pump, name="codeloop-stream-pump")
        while True:
            kind, value = await queue.get()
            if kind == "delta":
                yield value
            elif kind == "error":
                raise value
            else:
                return
