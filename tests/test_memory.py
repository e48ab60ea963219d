"""Memory steps round-trip through JSON losslessly and spell the right model input."""

import json

from codeloop.memory import (
    ActionStep,
    AgentMemory,
    FinalAnswerStep,
    MemoryStep,
    PlanningStep,
    TaskStep,
    Timing,
    ToolResult,
    image_parts,
)
from codeloop.models.base import ChatMessage, TokenUsage, ToolCall


def _sample_steps() -> list[MemoryStep]:
    usage = TokenUsage(120, 30, cache_read_tokens=100, reasoning_tokens=5)
    return [
        TaskStep(task="Compute things", images=image_parts([b"\x89PNG fake"])),
        PlanningStep(
            plan="1. compute\n2. answer",
            model_output_message=ChatMessage("assistant", "1. compute", token_usage=usage),
            token_usage=usage,
            timing=Timing(10.0, 11.5),
        ),
        ActionStep(
            step_number=1,
            model_output_message=ChatMessage("assistant", "```python\nx=1\n```", token_usage=usage),
            model_output="```python\nx=1\n```",
            code_action="x=1",
            observations="printed",
            action_output={"a": [1, 2.5, "s", None, True]},
            token_usage=usage,
            timing=Timing(11.5, 12.0),
        ),
        ActionStep(
            step_number=2,
            model_output_message=ChatMessage(
                "assistant", None, tool_calls=[ToolCall("c1", "search", {"q": "x"})]
            ),
            tool_calls=[ToolCall("c1", "search", {"q": "x"})],
            tool_results=[ToolResult("c1", "search", "found", is_error=False)],
            observations="[search] found",
            error="AgentToolCallError: bad",
            error_type="AgentToolCallError",
            timing=Timing(12.0, 13.0),
        ),
        FinalAnswerStep(output=[1, {"k": "v"}]),
    ]


def test_every_step_round_trips_through_json() -> None:
    for step in _sample_steps():
        data = json.loads(json.dumps(step.to_dict()))
        assert MemoryStep.from_dict(data) == step, type(step).__name__


def test_memory_round_trip_and_messages_are_identical() -> None:
    memory = AgentMemory("You are a test.")
    memory.steps = _sample_steps()
    again = AgentMemory.from_dict(json.loads(memory.to_json()))
    assert again.steps == memory.steps
    assert [m.to_dict() for m in again.to_messages()] == [m.to_dict() for m in memory.to_messages()]


def test_unserializable_output_is_kept_as_a_marked_repr() -> None:
    step = ActionStep(step_number=1, action_output={1, 2})
    data = json.loads(json.dumps(step.to_dict()))
    assert data["action_output"] == {"__codeloop_repr__": "{1, 2}", "type": "set"}


def test_to_messages_uses_native_roles_for_tool_results() -> None:
    memory = AgentMemory("sys")
    memory.steps = _sample_steps()
    messages = memory.to_messages()
    roles = [m.role for m in messages]
    assert roles[0] == "system" and roles[1] == "user"
    assert isinstance(messages[1].content, list) and messages[1].content[1]["type"] == "image"
    tool_msgs = [m for m in messages if m.role == "tool"]
    assert len(tool_msgs) == 1 and tool_msgs[0].tool_call_id == "c1" and tool_msgs[0].content == "found"
    code_obs = [m for m in messages if m.role == "user" and "Observation:\nprinted" in m.text]
    assert len(code_obs) == 1


def test_unknown_step_type_is_a_clear_error() -> None:
    try:
        MemoryStep.from_dict({"type": "nope"})
    except ValueError as exc:
        assert "nope" in str(exc) and "action" in str(exc)
    else:
        raise AssertionError("expected ValueError")
