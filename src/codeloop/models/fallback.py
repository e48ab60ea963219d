"""`FallbackModel`: try models in order; the next one answers when one fails after its own retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from ..errors import AgentGenerationError
from .base import ChatMessage, Model, StreamDelta

__all__ = ["FallbackModel"]


class FallbackModel:
    """A `Model` made of several: each call goes to the first that succeeds.

    A model "fails" when it raises `AgentGenerationError` (it already retried as its policy allows).
    Configuration errors (a missing key, an unsupported feature) are not failures to paper over: they
    propagate. While streaming, a model is only abandoned before its first delta; a break after that is
    reported, since the caller already holds part of that model's reply.

    `model_id` and `provider` name the model that answered the latest call (the first one until then), so
    cost accounting prices the model that actually served.
    """

    def __init__(self, models: Sequence[Model | str]) -> None:
        """`models` in order of preference; strings are specs for `codeloop.models.model`."""
        from . import model as model_from_spec

        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models: list[Model] = [model_from_spec(m) if isinstance(m, str) else m for m in models]
        self.active: Model = self.models[0]
        self.event_listeners: list[Callable[[Any], None]] = []
        """Receive the events (retries) of every inner model (agent runs get theirs without this)."""
        for inner in self.models:
            listeners = getattr(inner, "event_listeners", None)
            if isinstance(listeners, list):
                listeners.append(self._forward)

    def _forward(self, event: Any) -> None:
        for listener in list(self.event_listeners):
            listener(event)

    @property
    def model_id(self) -> str:  # type: ignore[override]
        """The id of the model that served the latest call."""
        return self.active.model_id

    @property
    def supports_response_format(self) -> bool:
        """True only when every model can honour `response_format` (any of them may end up answering)."""
        return all(getattr(m, "supports_response_format", False) for m in self.models)

    @property
    def provider(self) -> str:
        """The provider of the model that served the latest call."""
        return str(getattr(self.active, "provider", ""))

    def __repr__(self) -> str:
        return f"FallbackModel({self.models!r})"

    def _exhausted(self, failures: list[tuple[Model, AgentGenerationError]]) -> AgentGenerationError:
        detail = "; ".join(f"{m.model_id}: {e}" for m, e in failures)
        last = failures[-1][1]
        return AgentGenerationError(
            f"all {len(failures)} models failed: {detail}",
            provider=last.provider,
            status=last.status,
            provider_message=last.provider_message,
        )

    def generate(self, messages: list[ChatMessage], **options: Any) -> ChatMessage:
        """The first successful reply among the models."""
        failures: list[tuple[Model, AgentGenerationError]] = []
        for candidate in self.models:
            try:
                reply = candidate.generate(messages, **options)
            except AgentGenerationError as exc:
                failures.append((candidate, exc))
                continue
            self.active = candidate
            return reply
        raise self._exhausted(failures)

    async def agenerate(self, messages: list[ChatMessage], **options: Any) -> ChatMessage:
        """Async twin of `generate`."""
        failures: list[tuple[Model, AgentGenerationError]] = []
        for candidate in self.models:
            try:
                reply = await candidate.agenerate(messages, **options)
            except AgentGenerationError as exc:
                failures.append((candidate, exc))
                continue
            self.active = candidate
            return reply
        raise self._exhausted(failures)

    def generate_stream(self, messages: list[ChatMessage], **options: Any) -> Iterator[StreamDelta]:
        """The first model's stream that starts; later models only if earlier ones fail before any delta."""
        failures: list[tuple[Model, AgentGenerationError]] = []
        for candidate in self.models:
            started = False
            try:
                for delta in candidate.generate_stream(messages, **options):
                    if not started:
                        started = True
                        self.active = candidate
                    yield delta
                return
            except AgentGenerationError as exc:
                if started:
                    raise
                failures.append((candidate, exc))
        raise self._exhausted(failures)

    async def agenerate_stream(
        self, messages: list[ChatMessage], **options: Any
    ) -> AsyncIterator[StreamDelta]:
        """Async twin of `generate_stream`."""
        failures: list[tuple[Model, AgentGenerationError]] = []
        for candidate in self.models:
            started = False
            try:
                async for delta in candidate.agenerate_stream(messages, **options):
                    if not started:
                        started = True
                        self.active = candidate
                    yield delta
                return
            except AgentGenerationError as exc:
                if started:
                    raise
                failures.append((candidate, exc))
        raise self._exhausted(failures)
