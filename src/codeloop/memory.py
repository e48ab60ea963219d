"""Typed memory steps: what a run did, serializable to JSON and back, and turned into model input.

The trajectory is a list of steps. `AgentMemory.to_messages()` rebuilds the conversation the model sees from
them, so replaying, persisting and resuming a run all work from the same data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from .models.base import ChatMessage, TokenUsage, ToolCall

__all__ = [
    "Timing",
    "MemoryStep",
    "SystemPromptStep",
    "TaskStep",
    "PlanningStep",
    "ToolResult",
    "ActionStep",
    "FinalAnswerStep",
    "AgentMemory",
    "RunResult",
    "RunState",
    "to_jsonable",
    "image_parts",
]

RunState = Literal["success", "max_steps", "interrupted", "error", "budget", "awaiting_approval"]
_REPR_KEY = "__codeloop_repr__"


def to_jsonable(value: Any) -> Any:
    """`value` unchanged when JSON can hold it, otherwise a marked repr (so a step always serializes)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_jsonable(v) for k, v in value.items()}
    return {_REPR_KEY: repr(value), "type": type(value).__name__}


@dataclass
class Timing:
    """Wall-clock start and end of a step or a run, in seconds since the epoch."""

    start_time: float = field(default_factory=time.time)
    end_time: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, once ended."""
        return None if self.end_time is None else self.end_time - self.start_time

    def end(self) -> None:
        """Mark the end now."""
        self.end_time = time.time()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"start_time": self.start_time, "end_time": self.end_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        """Inverse of `to_dict`."""
        return cls(data["start_time"], data.get("end_time"))


@dataclass
class MemoryStep:
    """Base class of steps. Subclasses declare `kind`, used as the JSON discriminator."""

    kind: ClassVar[str] = "step"
    registry: ClassVar[dict[str, type[MemoryStep]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MemoryStep.registry[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a `type` key naming the step kind."""
        data: dict[str, Any] = {"type": self.kind}
        for f in fields(self):
            data[f.name] = _encode(getattr(self, f.name))
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> MemoryStep:
        """Rebuild a step of the right class from `to_dict` output."""
        cls = MemoryStep.registry.get(data.get("type", ""))
        if cls is None:
            raise ValueError(
                f"unknown memory step type {data.get('type')!r}; known: {sorted(MemoryStep.registry)}"
            )
        kwargs = {}
        for f in fields(cls):
            if f.name in data:
                kwargs[f.name] = _DECODERS.get(f.name, _identity)(data[f.name])
        return cls(**kwargs)

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """This step's share of the model input."""
        return []


def _identity(value: Any) -> Any:
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, (TokenUsage, Timing, ChatMessage, ToolCall, ToolResult)):
        return value.to_dict()
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return to_jsonable(value)


_DECODERS: dict[str, Any] = {
    "token_usage": TokenUsage.from_dict,
    "timing": Timing.from_dict,
    "model_output_message": lambda d: None if d is None else ChatMessage.from_dict(d),
    "tool_calls": lambda items: [ToolCall.from_dict(d) for d in items],
    "tool_results": lambda items: [ToolResult.from_dict(d) for d in items],
}


@dataclass
class SystemPromptStep(MemoryStep):
    """The system prompt the run used."""

    kind: ClassVar[str] = "system_prompt"
    system_prompt: str = ""

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The system message (left out in summary mode)."""
        return [] if summary_mode else [ChatMessage("system", self.system_prompt)]


@dataclass
class TaskStep(MemoryStep):
    """The task, with any input images as content parts."""

    kind: ClassVar[str] = "task"
    task: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The task as a user message, images attached."""
        text = f"New task:\n{self.task}"
        if not self.images:
            return [ChatMessage("user", text)]
        return [ChatMessage("user", [{"type": "text", "text": text}, *self.images])]


@dataclass
class PlanningStep(MemoryStep):
    """An initial plan or a plan update."""

    kind: ClassVar[str] = "planning"
    plan: str = ""
    model_output_message: ChatMessage | None = None
    token_usage: TokenUsage | None = None
    timing: Timing = field(default_factory=Timing)

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The plan as the assistant's words, then the nudge to carry it out."""
        if summary_mode:
            return []
        return [
            ChatMessage("assistant", self.plan.strip()),
            ChatMessage("user", "Now proceed and carry out this plan."),
        ]


@dataclass
class ToolResult:
    """The outcome of one native tool call: what the model sees in the matching `tool` message."""

    call_id: str
    name: str
    output: str
    is_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"call_id": self.call_id, "name": self.name, "output": self.output, "is_error": self.is_error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolResult:
        """Inverse of `to_dict`."""
        return cls(data["call_id"], data["name"], data["output"], data.get("is_error", False))


@dataclass
class ActionStep(MemoryStep):
    """One turn of the loop: the model's action and what came of it."""

    kind: ClassVar[str] = "action"
    step_number: int = 0
    model_output_message: ChatMessage | None = None
    model_output: str | None = None
    code_action: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    observations: str | None = None
    observation_images: list[dict[str, Any]] = field(default_factory=list)
    action_output: Any = None
    error: str | None = None
    error_type: str | None = None
    is_final_answer: bool = False
    token_usage: TokenUsage | None = None
    timing: Timing = field(default_factory=Timing)
    variables: str | None = None
    """CodeAgent: the executor's one-line description of the variables defined after this step (names, types,
    sizes); shown to the model in place of masked observations (`codeloop.compaction`)."""
    context_note: str | None = None
    """What context compaction changed for this step's request (steps masked or summarised, a failed summary)."""

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The assistant's action, then tool messages (native calls) or an observation as a user turn."""
        messages: list[ChatMessage] = []
        if self.model_output_message is not None and (self.model_output is not None or self.tool_calls):
            messages.append(
                ChatMessage(
                    "assistant",
                    (self.model_output or "").strip() or None,
                    tool_calls=list(self.tool_calls),
                )
            )
        answered = {r.call_id for r in self.tool_results}
        for result in self.tool_results:
            messages.append(ChatMessage("tool", result.output, tool_call_id=result.call_id, name=result.name))
        for call in self.tool_calls:
            # Providers reject an assistant tool call with no answer; every call gets one.
            if call.id not in answered:
                note = self.error or "This call was not run."
                messages.append(ChatMessage("tool", f"Error: {note}", tool_call_id=call.id, name=call.name))
        if not self.tool_calls and self.observations is not None:
            content: str | list[dict[str, Any]] = f"Observation:\n{self.observations}"
            if self.observation_images:
                content = [{"type": "text", "text": content}, *self.observation_images]
            messages.append(ChatMessage("user", content))
        if self.error is not None and not self.tool_calls:
            messages.append(
                ChatMessage(
                    "user",
                    f"Error:\n{self.error}\nNow let's retry: take care not to repeat previous errors! "
                    "If you have retried several times, try a completely different approach.",
                )
            )
        return messages


@dataclass
class FinalAnswerStep(MemoryStep):
    """The run's final answer."""

    kind: ClassVar[str] = "final_answer"
    output: Any = None
    token_usage: TokenUsage | None = None
    """Usage of the extra model call that asked for an answer once max_steps ran out (else None)."""


class AgentMemory:
    """The ordered steps of an agent's conversation, plus the system prompt."""

    def __init__(self, system_prompt: str = "") -> None:
        self.system_prompt = SystemPromptStep(system_prompt=system_prompt)
        self.steps: list[MemoryStep] = []

    def reset(self) -> None:
        """Forget every step (the system prompt stays)."""
        self.steps = []

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The model input the steps spell, in order."""
        messages = self.system_prompt.to_messages(summary_mode)
        for step in self.steps:
            messages.extend(step.to_messages(summary_mode))
        return messages

    @property
    def action_steps(self) -> list[ActionStep]:
        """Just the action steps."""
        return [s for s in self.steps if isinstance(s, ActionStep)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole memory."""
        return {"system_prompt": self.system_prompt.system_prompt, "steps": [s.to_dict() for s in self.steps]}

    def to_json(self, **kwargs: Any) -> str:
        """The memory as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentMemory:
        """Inverse of `to_dict`."""
        memory = cls(data.get("system_prompt", ""))
        memory.steps = [MemoryStep.from_dict(d) for d in data.get("steps", [])]
        return memory


def new_run_id() -> str:
    """A new run id: 32 hex digits, the first 12 the start time in milliseconds, so ids sort by start time."""
    import os
    import time

    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass
class RunResult:
    """Everything a run produced: `run(task, return_full_result=True)` returns this.

    `state` says how the run ended: "success", "max_steps" (the answer came from the last forced call),
    "interrupted", "error" (an unfixable error; see `error`), "budget" (see `error` for which budget), or
    "awaiting_approval" (paused: `pending` lists the tool calls waiting for a decision; see `agent.resume`).
    """

    output: Any
    state: RunState
    steps: list[MemoryStep]
    token_usage: TokenUsage
    timing: Timing
    error: str | None = None
    cost_usd: float | None = None
    run_id: str = ""
    """A unique id of this run (also on the `RunStarted` event): sortable by start time."""
    pending: list[Any] = field(default_factory=list)
    """The tool calls awaiting approval (`codeloop.approval.PendingCall`) when `state == "awaiting_approval"`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "output": to_jsonable(self.output),
            "state": self.state,
            "steps": [s.to_dict() for s in self.steps],
            "token_usage": self.token_usage.to_dict(),
            "timing": self.timing.to_dict(),
            "error": self.error,
            "cost_usd": self.cost_usd,
            "pending": [p.to_dict() for p in self.pending],
        }


def image_parts(images: Sequence[Any]) -> list[dict[str, Any]]:
    """Images (bytes, file paths, PIL images, URLs or ready content parts) as neutral image content parts."""
    import base64
    import io
    import mimetypes
    from pathlib import Path

    parts: list[dict[str, Any]] = []
    for image in images:
        if isinstance(image, dict) and image.get("type") == "image":
            parts.append(image)
        elif isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
            parts.append({"type": "image", "url": image})
        elif isinstance(image, str | Path):
            path = Path(image)
            if not path.is_file():
                raise ValueError(f"image file {str(path)!r} does not exist")
            mime = mimetypes.guess_type(path.name)[0] or "image/png"
            parts.append(
                {"type": "image", "data": base64.b64encode(path.read_bytes()).decode(), "mime_type": mime}
            )
        elif isinstance(image, bytes | bytearray):
            parts.append(
                {"type": "image", "data": base64.b64encode(bytes(image)).decode(), "mime_type": "image/png"}
            )
        elif hasattr(image, "save"):  # a PIL image
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            parts.append(
                {
                    "type": "image",
                    "data": base64.b64encode(buffer.getvalue()).decode(),
                    "mime_type": "image/png",
                }
            )
        else:
            raise TypeError(
                f"cannot use {type(image).__name__} as an image: pass bytes, a path, a URL or a PIL image"
            )
    return parts
