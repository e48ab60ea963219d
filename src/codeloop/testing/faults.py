"""Faults the scripted server can inject in place of a reply, to test retries, timeouts and broken streams.

A `Fault` takes one slot in a script, like a reply: `[Fault.rate_limit(retry_after=0.2), "hello"]` answers the
first request with HTTP 429 and the retried request with "hello".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .scripted import Reply

__all__ = ["Fault", "FaultKind"]

FaultKind = Literal["status", "hang", "cut", "malformed_json"]


@dataclass(frozen=True)
class Fault:
    """One injected failure. Build it with the class methods; the fields are what the server acts on."""

    kind: FaultKind
    status: int = 500
    message: str = "scripted failure"
    error_type: str = "server_error"
    retry_after: float | None = None
    """Seconds sent as `Retry-After` (whole seconds, rounded up) and `retry-after-ms` (exact)."""
    seconds: float = 30.0
    """How long a hanging response waits before the server drops the connection."""
    reply: Reply | None = None
    """For a cut: the reply whose start is sent before the connection drops."""
    after_chunks: int = 2
    """For a cut stream: how many stream frames (SSE events, including the opening ones) go out first."""

    @classmethod
    def rate_limit(
        cls, retry_after: float | None = 1.0, message: str = "Rate limit reached, retry later"
    ) -> Fault:
        """HTTP 429, with `Retry-After` when `retry_after` is given."""
        return cls(
            "status", status=429, message=message, error_type="rate_limit_error", retry_after=retry_after
        )

    @classmethod
    def server_error(
        cls, status: int = 500, message: str = "The server had an error processing your request"
    ) -> Fault:
        """An HTTP 5xx answer."""
        return cls("status", status=status, message=message, error_type="server_error")

    @classmethod
    def error(cls, status: int, message: str, error_type: str = "invalid_request_error") -> Fault:
        """Any HTTP error answer, e.g. `Fault.error(404, "The model `x` does not exist")`."""
        return cls("status", status=status, message=message, error_type=error_type)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Accept the request and send nothing for `seconds` (or until the server closes), then drop it."""
        return cls("hang", seconds=seconds)

    @classmethod
    def cut(cls, reply: Reply, after_chunks: int = 2) -> Fault:
        """Start answering with `reply` and drop the connection part-way (mid-stream when streaming)."""
        return cls("cut", reply=reply, after_chunks=after_chunks)

    @classmethod
    def malformed_json(cls) -> Fault:
        """HTTP 200 whose body is not valid JSON."""
        return cls("malformed_json")
