"""Retries, rate limiting and broken-stream handling shared by every remote adapter.

Provider SDKs each retry in their own way (or not at all); adapters switch those retries off and use this one
policy instead, so every provider backs off the same way: exponential backoff with jitter on 429, 5xx and
connection errors, honouring `Retry-After`, bounded by `max_retries` and a wall-clock deadline, ending in an
`AgentGenerationError` that names the provider, the status and the provider's own message.

Each retry is announced before its wait ("retrying in 1 s: HTTP 429 ..."): as a WARNING record on the
`codeloop.models` logger whose `retry` attribute holds the `RetryNotice`, and as a `codeloop.events.ModelRetry`
event handed to the agent run the request is made for (its console and listeners) and to the model's
`event_listeners`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import AgentGenerationError
from ..events import ModelRetry, RetryNotice, current_run_listener
from .base import StreamDelta

__all__ = [
    "ProviderFailure",
    "RetryNotice",
    "RetryPolicy",
    "RateLimiter",
    "Retrier",
    "StreamCutError",
    "MalformedResponseError",
    "retry_after_seconds",
]

T = TypeVar("T")

logger = logging.getLogger("codeloop.models")
# A library leaves output to its user: without this, Python's last-resort handler would print every retry
# to stderr on top of the agent's console, which already shows it (as a `ModelRetry` event).
logger.addHandler(logging.NullHandler())

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


class StreamCutError(ConnectionError):
    """A streamed reply ended before the provider said it was complete."""


class MalformedResponseError(ValueError):
    """The provider answered 200 with a body that is not the response its API defines."""


@dataclass
class ProviderFailure:
    """What went wrong in one attempt, in provider-neutral terms."""

    status: int | None
    """HTTP status, or `None` when no answer arrived (connection error, timeout, cut stream)."""
    message: str
    """The provider's own message, verbatim where there is one."""
    retryable: bool
    retry_after: float | None = None
    """Seconds the provider asked us to wait, from `retry-after-ms` / `Retry-After`."""


def retry_after_seconds(headers: object) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if present."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass
class RetryPolicy:
    """How often and how long to retry one model call."""

    max_retries: int = 3
    """Retries after the first attempt (so at most `max_retries + 1` requests)."""
    base_delay: float = 1.0
    """First backoff in seconds; doubles with each retry."""
    max_delay: float = 30.0
    """Cap on one backoff (a longer `Retry-After` is still honoured, within the deadline)."""
    deadline_s: float | None = 300.0
    """No retry starts later than this many seconds after the first attempt."""

    def backoff(self, retry_number: int, retry_after: float | None) -> float:
        """Seconds to wait before retry `retry_number` (0-based)."""
        if retry_after is not None:
            # The provider knows best; a little jitter keeps parallel clients from retrying in lockstep.
            return retry_after + random.uniform(0, min(0.1 * retry_after, 1.0))
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return random.uniform(ceiling / 2, ceiling)


class RateLimiter:
    """Spaces request starts evenly so no more than `requests_per_minute` begin in any minute."""

    def __init__(self, requests_per_minute: float) -> None:
        if requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.interval = 60.0 / requests_per_minute
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            return slot - now

    def acquire(self) -> None:
        """Block until this request may start."""
        wait = self._reserve()
        if wait > 0:
            time.sleep(wait)

    async def aacquire(self) -> None:
        """Async twin of `acquire`."""
        wait = self._reserve()
        if wait > 0:
            await asyncio.sleep(wait)


Classifier = Callable[[BaseException], "ProviderFailure | None"]


class Retrier:
    """Runs model calls under a `RetryPolicy` and optional `RateLimiter`.

    `classify` turns an exception raised by the provider's SDK into a `ProviderFailure`, or `None` for
    exceptions that are not about the provider (programming errors), which propagate unchanged.
    """

    def __init__(
        self,
        provider: str,
        model_id: str,
        classify: Classifier,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        listeners: list[Callable[[Any], None]] | None = None,
    ) -> None:
        self.provider = provider
        self.model_id = model_id
        self.classify = classify
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.sleep = sleep
        self.listeners = listeners if listeners is not None else []
        """Called with a `ModelRetry` event before each retry's wait; the list may be shared with the model."""

    # -- decisions ---------------------------------------------------------------------------------------------
    def _failure(self, exc: BaseException) -> ProviderFailure | None:
        if isinstance(exc, AgentGenerationError):
            return None
        if isinstance(exc, StreamCutError):
            return ProviderFailure(None, str(exc), retryable=True)
        if isinstance(exc, MalformedResponseError):
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return self.classify(exc)

    def _wait_before_retry(self, failure: ProviderFailure, retries_done: int, started: float) -> float | None:
        if not failure.retryable or retries_done >= self.policy.max_retries:
            return None
        wait = self.policy.backoff(retries_done, failure.retry_after)
        deadline = self.policy.deadline_s
        if deadline is not None and time.monotonic() - started + wait > deadline:
            return None
        return wait

    def _retry_wait(
        self, exc: Exception, retries: int, started: float, received: list[StreamDelta] | None = None
    ) -> float | None:
        # The pause before the next attempt after `exc`. `None`: not a provider failure, the caller re-raises
        # `exc` as it is. No retry left, or (streams) deltas already handed out: the failure is raised here.
        failure = self._failure(exc)
        if failure is None:
            return None
        if received:
            failure.message = (
                f"the stream was cut after {len(received)} chunks of the reply: {failure.message}"
            )
            error = self.error(failure, retries + 1, exc, status_text="stream cut")
            error.partial_output = "".join(d.content for d in received if d.content) or None
            raise error from exc
        wait = self._wait_before_retry(failure, retries, started)
        if wait is None:
            raise self.error(failure, retries + 1, exc) from exc
        notice = RetryNotice(
            self.provider,
            self.model_id,
            retries + 1,
            self.policy.max_retries,
            wait,
            failure.status,
            failure.message,
        )
        self._announce(notice)
        return wait

    def _announce(self, notice: RetryNotice) -> None:
        logger.warning("%s", notice, extra={"retry": notice})
        run_listener = current_run_listener()  # the agent run this request is made for, if any
        listeners = [*self.listeners, run_listener] if run_listener is not None else list(self.listeners)
        if not listeners:
            return
        event = ModelRetry(notice)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener that fails must not turn a retry into a failed model call
                logger.exception("a listener failed on %r", event)

    def error(
        self,
        failure: ProviderFailure,
        attempts: int,
        cause: BaseException | None = None,
        *,
        status_text: str | None = None,
    ) -> AgentGenerationError:
        """The `AgentGenerationError` reporting `failure` after `attempts` requests."""
        status = status_text or (f"HTTP {failure.status}" if failure.status is not None else "no response")
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        error = AgentGenerationError(
            f"{self.provider} model {self.model_id!r} failed after {tries} ({status}): {failure.message}",
            provider=self.provider,
            status=failure.status,
            provider_message=failure.message,
        )
        error.__cause__ = cause
        return error

    # -- runners -----------------------------------------------------------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` with retries; provider failures end as `AgentGenerationError`."""
        started = time.monotonic()
        retries = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                return fn()
            except Exception as exc:
                wait = self._retry_wait(exc, retries, started)
                if wait is None:
                    raise
            self.sleep(wait)
            retries += 1

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Async twin of `call`."""
        started = time.monotonic()
        retries = 0
        while True:
            if self.limiter is not None:
                await self.limiter.aacquire()
            try:
                return await fn()
            except Exception as exc:
                wait = self._retry_wait(exc, retries, started)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
            retries += 1

    def stream(self, open_stream: Callable[[], Iterator[StreamDelta]]) -> Iterator[StreamDelta]:
        """Deltas of `open_stream()`, retried while nothing has been handed out yet.

        Once a delta has reached the caller a retry could repeat or contradict it, so a failure after that
        point is reported (as `AgentGenerationError`, saying the stream was cut, with the text received as its
        `partial_output`) instead of retried; what was received stays delivered.
        """
        started = time.monotonic()
        retries = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            received: list[StreamDelta] = []
            try:
                for delta in open_stream():
                    received.append(delta)
                    yield delta
                return
            except Exception as exc:
                wait = self._retry_wait(exc, retries, started, received)
                if wait is None:
                    raise
            self.sleep(wait)
            retries += 1

    async def astream(
        self, open_stream: Callable[[], AsyncIterator[StreamDelta]]
    ) -> AsyncIterator[StreamDelta]:
        """Async twin of `stream`."""
        started = time.monotonic()
        retries = 0
        while True:
            if self.limiter is not None:
                await self.limiter.aacquire()
            received: list[StreamDelta] = []
            try:
                async for delta in open_stream():
                    received.append(delta)
                    yield delta
                return
            except Exception as exc:
                wait = self._retry_wait(exc, retries, started, received)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
            retries += 1
