"""The typed events the agent loop emits.

The loop never renders or persists anything: it yields these, and listeners (the rich console, a UI, a run
store, telemetry) consume them. `run(stream=True)` and `astream()` hand them to the caller directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .models.base import ChatMessage, ToolCall

if TYPE_CHECKING:
    from .memory import ActionStep, PlanningStep, RunResult

__all__ = [
    "Event",
    "RunStarted",
    "StepStarted",
    "ModelTextDelta",
    "ModelOutput",
    "CodeAction",
    "ToolCallStarted",
    "Observation",
    "ExecutionLog",
    "PlanCreated",
    "FinalAnswer",
    "StepError",
    "StepFinished",
    "RunFinished",
]


@dataclass
class Event:
    """Base class of every event; `agent` names the agent that emitted it."""

    agent: str = field(default="", kw_only=True)


@dataclass
class RunStarted(Event):
    """A run began with this task."""

    task: str
    model_id: str = ""
    run_id: str = ""
    """The run's id, known before the run ends (the same as `RunResult.run_id`)."""
    max_steps: int | None = None
    """The most action steps this run may take (for progress displays)."""


@dataclass
class StepStarted(Event):
    """An action step began."""

    step_number: int


@dataclass
class ModelTextDelta(Event):
    """A chunk of text streamed from the model."""

    text: str


@dataclass
class ModelOutput(Event):
    """The model's whole reply for this step."""

    message: ChatMessage
    step_number: int


@dataclass
class CodeAction(Event):
    """The code the agent is about to run."""

    code: str
    step_number: int


@dataclass
class ToolCallStarted(Event):
    """A tool call the agent is about to make (ToolCallingAgent)."""

    call: ToolCall
    step_number: int


@dataclass
class ExecutionLog(Event):
    """Output the running code printed, as it comes (when the executor streams it)."""

    text: str


@dataclass
class Observation(Event):
    """What the model will see as the result of its action."""

    text: str
    step_number: int


@dataclass
class PlanCreated(Event):
    """A plan or plan update."""

    plan: PlanningStep


@dataclass
class FinalAnswer(Event):
    """The run's answer (before `RunFinished`)."""

    output: Any


@dataclass
class StepError(Event):
    """An error inside a step; fixable ones are shown to the model and the run goes on."""

    error: Exception
    step_number: int


@dataclass
class StepFinished(Event):
    """An action step ended; `step` holds everything it produced."""

    step: ActionStep


@dataclass
class RunFinished(Event):
    """The run ended; `result` is the same object `run(..., return_full_result=True)` returns."""

    result: RunResult


@dataclass
class ToolProgress(Event):
    """A running tool reported progress (an MCP tool's `notifications/progress`), as it happens.

    It arrives while the tool runs, from the thread that receives it; `total` and `message` are what the tool
    sent, `None` when it sent none.
    """

    tool: str
    progress: float
    total: float | None = None
    message: str | None = None

    def describe(self) -> str:
        """`tool: 3/10 (30%) message`, for display."""
        amount = f"{self.progress:g}"
        if self.total:
            amount += f"/{self.total:g} ({100 * self.progress / self.total:.0f}%)"
        return f"{self.tool}: {amount}" + (f" {self.message}" if self.message else "")


@dataclass(frozen=True)
class RetryNotice:
    """One retry about to happen: which model, after which failure, and how long it waits first.

    Made by the retry layer (`codeloop.models.reliability`), which logs it and sends it in a `ModelRetry`.
    """

    provider: str
    model_id: str
    retry_number: int
    """1 for the first retry (the second request)."""
    max_retries: int
    wait_s: float
    status: int | None
    """HTTP status of the failure, `None` when no answer arrived (timeout, connection error, cut stream)."""
    message: str
    """The provider's own message, or what went wrong on the connection."""

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        # Whole seconds read best; under 1 s one decimal keeps a 0.4 s backoff from reading "0 s".
        wait = f"{self.wait_s:.0f} s" if self.wait_s >= 1 else f"{self.wait_s:.1f} s"
        return (
            f"{self.provider} model {self.model_id!r}: retrying in {wait}: {status}: {self.message}"
            f" (retry {self.retry_number} of {self.max_retries})"
        )


@dataclass
class ModelRetry(Event):
    """A model request failed (429, 5xx, timeout, connection) and is retried after `notice.wait_s` seconds.

    Emitted by the retry layer before it waits, from the thread making the request.
    """

    notice: RetryNotice

    def describe(self) -> str:
        """`openai model 'gpt-4o': retrying in 1 s: HTTP 429: ... (retry 1 of 3)`."""
        return str(self.notice)


_run_listener: ContextVar[Callable[[Event], None] | None] = ContextVar("codeloop_run_listener", default=None)


def current_run_listener() -> Callable[[Event], None] | None:
    """The listener of the agent run going on in this thread or task, if any.

    Code working for a run reports through it as it goes (a model's retries, a tool's progress), so those
    events reach that run's console and listeners, and no other run's, even when a model or a tool is
    shared by many agents running at once.
    """
    return _run_listener.get()


@contextmanager
def reporting_to(listener: Callable[[Event], None]) -> Iterator[None]:
    """Make `listener` the `current_run_listener()` for the duration of the block (the agent's drivers)."""
    token = _run_listener.set(listener)
    try:
        yield
    finally:
        try:
            _run_listener.reset(token)
        except ValueError:  # a run abandoned and finalized from another context: its context is gone anyway
            pass


_process_listeners: tuple[Callable[[Event], None], ...] = ()


def add_process_listener(listener: Callable[[Event], None]) -> None:
    """Hand every event of every agent in this process to `listener` too (instrumentation such as tracing).

    It is called after the agent's own listeners, and like them never ends a run by raising.
    """
    global _process_listeners
    if listener not in _process_listeners:
        _process_listeners = (*_process_listeners, listener)


def remove_process_listener(listener: Callable[[Event], None]) -> None:
    """Undo `add_process_listener` (nothing happens when `listener` was not added)."""
    global _process_listeners
    _process_listeners = tuple(x for x in _process_listeners if x is not listener)


def process_listeners() -> tuple[Callable[[Event], None], ...]:
    """The listeners added with `add_process_listener`, in order."""
    return _process_listeners


__all__ += [
    "ToolProgress", "RetryNotice", "ModelRetry", "current_run_listener", "reporting_to",
    "add_process_listener", "remove_process_listener", "process_listeners",
]  # fmt: skip
