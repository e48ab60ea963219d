"""`RemoteModel`: the base of adapters that call a provider over the network, and helpers they share."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .._checks import check_limit
from ..errors import MissingAPIKeyError, ModelConfigurationError
from .base import ApiModel, ChatMessage, StreamDelta, ToolCall, trim_at_stop
from .reliability import ProviderFailure, RateLimiter, Retrier, RetryPolicy

__all__ = [
    "RemoteModel",
    "StopTrimmer",
    "block_turns",
    "is_transport_error",
    "resolve_api_key",
    "without_surrogates",
    "trim_stream",
    "atrim_stream",
]


def resolve_api_key(api_key: str | None, env_var: str, provider: str, *, required: bool) -> str | None:
    """`api_key`, else the environment variable; a `MissingAPIKeyError` naming it when required and unset."""
    key = api_key or os.environ.get(env_var)
    if not key and required:
        raise MissingAPIKeyError(
            f"{provider}: no API key. Set the {env_var} environment variable or pass api_key=...",
            provider=provider,
            env_var=env_var,
        )
    return key


def without_surrogates(value: Any) -> Any:
    """`value` (JSON-like: str, list, dict) with lone surrogates in its strings replaced by `?`.

    Agent code can print text no encoder accepts (`print('\\udcff')`); sent as is, the request could not
    even be encoded and the run would end blamed on the model. Text leaving the process is valid UTF-8.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {k: without_surrogates(v) for k, v in value.items()}
    return value


def block_turns(
    messages: list[ChatMessage],
    blocks: Callable[[str | list[dict[str, Any]] | None], list[dict[str, Any]]],
    *,
    tool_result: Callable[[ChatMessage], dict[str, Any]],
    tool_use: Callable[[ToolCall, dict[str, Any]], dict[str, Any]],
    assistant_prefix: Callable[[ChatMessage], list[dict[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Neutral messages as `(system blocks, turns)` for the block-based APIs (Anthropic Messages, Bedrock Converse).

    `blocks` turns content into the API's content blocks; a tool message becomes `tool_result(msg)` in a user
    turn; each tool call becomes `tool_use(call, arguments)` after the assistant's text (and after
    `assistant_prefix(msg)`, which goes first). Consecutive same-role turns merge, since both APIs want user
    and assistant to alternate; tool results stay first in their user turn because they are added in order.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, new_blocks: list[dict[str, Any]]) -> None:
        if not new_blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(new_blocks)
        else:
            turns.append({"role": role, "content": new_blocks})

    for msg in messages:
        if msg.role == "system":
            system.extend(blocks(msg.content))
        elif msg.role == "tool":
            add("user", [tool_result(msg)])
        elif msg.role == "assistant":
            assistant = (assistant_prefix(msg) if assistant_prefix else []) + blocks(msg.content)
            for call in msg.tool_calls:
                assistant.append(tool_use(call, call.arguments if isinstance(call.arguments, dict) else {}))
            add("assistant", assistant)
        else:
            add("user", blocks(msg.content))
    return without_surrogates(system), without_surrogates(turns)


class RemoteModel(ApiModel):
    """Shared options of network adapters: retries, deadline, request timeout and rate limit.

    Args:
        model_id: The provider's model name.
        max_retries: Retries after the first attempt on 429, 5xx, timeouts and connection errors.
        timeout: Seconds one request may take before it counts as failed (and is retried).
        retry_deadline_s: No retry starts later than this many seconds after the first attempt.
        requests_per_minute: Space requests so no more than this many start per minute.
        retry_base_delay: First backoff in seconds (doubling, with jitter), when the provider sends no
            `Retry-After`.
        **generate_kwargs: Sent with every request (e.g. `temperature`, `max_tokens`).
    """

    provider: str = "remote"
    """The provider's short name, used in errors and in the factory spec."""
    supports_response_format: bool = True
    """Whether `response_format` (JSON Schema output) works; callers check it before relying on it."""

    def __init__(
        self,
        model_id: str,
        *,
        max_retries: int = 3,
        timeout: float | None = 120.0,
        retry_deadline_s: float | None = 300.0,
        requests_per_minute: float | None = None,
        retry_base_delay: float = 1.0,
        **generate_kwargs: Any,
    ) -> None:
        check_limit("timeout", timeout)
        check_limit("retry_deadline_s", retry_deadline_s)
        check_limit("requests_per_minute", requests_per_minute)
        check_limit("max_retries", max_retries, integer=True, allow_zero=True, optional=False)
        check_limit("retry_base_delay", retry_base_delay, allow_zero=True, optional=False)
        super().__init__(model_id, **generate_kwargs)
        if not model_id:
            raise ModelConfigurationError(
                f"{self.provider}: a model id is required, e.g. '{self.provider}:<model>'"
            )
        self.timeout = timeout
        self.generate_kwargs = generate_kwargs
        self.retry_policy = RetryPolicy(
            max_retries=max_retries, base_delay=retry_base_delay, deadline_s=retry_deadline_s
        )
        self.rate_limiter = RateLimiter(requests_per_minute) if requests_per_minute else None
        self.event_listeners: list[Callable[[Any], None]] = []
        """Receive a `codeloop.events.ModelRetry` before each retry (agent runs get theirs without this)."""
        self.retrier = Retrier(
            self.provider,
            model_id,
            self.classify_error,
            self.retry_policy,
            self.rate_limiter,
            listeners=self.event_listeners,
        )
        self._client: Any = None
        self._async_clients: dict[int, Any] = {}

    # -- SDK clients ---------------------------------------------------------------------------------------------
    def create_client(self) -> Any:
        """The provider's synchronous SDK client; adapters that have one override this."""
        raise ModelConfigurationError(f"{self.provider}: {type(self).__name__} has no synchronous SDK client")

    def create_async_client(self) -> Any:
        """The provider's async SDK client; adapters that have one override this."""
        raise ModelConfigurationError(f"{self.provider}: {type(self).__name__} has no async SDK client")

    @property
    def client(self) -> Any:
        """The synchronous SDK client, made on first use."""
        if self._client is None:
            self._client = self.create_client()
        return self._client

    def _async_client(self) -> Any:
        # An async HTTP pool belongs to one event loop; keep one client, for the loop running now.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._async_clients:
            self._async_clients = {loop_id: self.create_async_client()}
        return self._async_clients[loop_id]

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """Map an SDK exception to a `ProviderFailure`; `None` lets it propagate unchanged.

        The default treats connection-level errors as retryable and anything else as not the provider's.
        """
        if is_transport_error(exc):
            return ProviderFailure(None, f"{type(exc).__name__}: {exc}", retryable=True)
        return None


_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "h2", "urllib3", "requests", "aiohttp", "anyio")


def is_transport_error(exc: BaseException) -> bool:
    """Whether `exc` is a connection-level failure (refused, reset, timed out, body cut short).

    SDKs let some of these escape unwrapped while a stream is being read, as the HTTP library's own types.
    """
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".", 1)[0]
        known = root in _TRANSPORT_MODULES or root.rstrip("0123456789") in _TRANSPORT_MODULES
        if known and cls.__name__.endswith(("Error", "Timeout")):
            return True
    return False


class StopTrimmer:
    """Cuts streamed text at the first stop sequence, holding back just enough to catch one split across chunks."""

    def __init__(self, stop: list[str] | None) -> None:
        self.stop = [s for s in stop or [] if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` that is safe to hand out now."""
        if self.stopped or not text:
            return ""
        if not self.stop:
            return text
        self.buffer += text
        trimmed = trim_at_stop(self.buffer, self.stop)
        if trimmed != self.buffer:
            self.stopped = True
            self.buffer = ""
            return trimmed
        cut = max(0, len(self.buffer) - self.hold)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out

    def flush(self) -> str:
        """What was held back, at the end of the stream."""
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def _trim_delta(trimmer: StopTrimmer, delta: StreamDelta) -> None:
    text = trimmer.feed(delta.content) if delta.content else ""
    if delta.token_usage is not None:
        # Usage comes last: release the held-back text with it so usage stays on the final delta.
        text += trimmer.flush()
    delta.content = text or None


def trim_stream(deltas: Iterator[StreamDelta], stop: list[str] | None) -> Iterator[StreamDelta]:
    """`deltas` with content cut at the first stop sequence; tool calls and usage pass through."""
    trimmer = StopTrimmer(stop)
    for delta in deltas:
        _trim_delta(trimmer, delta)
        if delta.content or delta.tool_calls or delta.token_usage or delta.reasoning:
            yield delta
    rest = trimmer.flush()
    if rest:
        yield StreamDelta(content=rest)


async def atrim_stream(
    deltas: AsyncIterator[StreamDelta], stop: list[str] | None
) -> AsyncIterator[StreamDelta]:
    """Async twin of `trim_stream`."""
    trimmer = StopTrimmer(stop)
    async for delta in deltas:
        _trim_delta(trimmer, delta)
        if delta.content or delta.tool_calls or delta.token_usage or delta.reasoning:
            yield delta
    rest = trimmer.flush()
    if rest:
        yield StreamDelta(content=rest)
