"""How a `ToolCallingAgent` accepts the calls of one reply, before any of them runs.

A call names a known tool and carries a JSON object of valid arguments; `final_answer` comes alone. A model that
sends `final_answer` beside other calls has written its answer before it saw their results (small models do
this in most replies), so that answer is refused: the other calls run, and the refusal tells the model to answer
again, alone, now that the results are in front of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import AgentToolCallError
from .models.base import ToolCall

__all__ = ["check_tool_call", "FINAL_ANSWER_NOT_ALONE"]

FINAL_ANSWER_NOT_ALONE = (
    "final_answer was not run: it came in the same reply as other calls, before their results. Call final_answer "
    "alone, in a reply of its own, after you have seen the results of your other calls (they are above)."
)


def check_tool_call(
    tools: dict[str, Any], call: ToolCall, calls: Sequence[ToolCall]
) -> tuple[Any, dict[str, Any]]:
    """(tool, validated arguments) for `call`, one of a reply's `calls`.

    Raises:
        AgentToolCallError: the call cannot run as sent; the message tells the model how to send it.
    """
    if call.name == "final_answer" and len(calls) > 1:
        raise AgentToolCallError(FINAL_ANSWER_NOT_ALONE)
    tool = tools.get(call.name)
    if tool is None:
        raise AgentToolCallError(f"Unknown tool {call.name!r}. Available tools: {', '.join(sorted(tools))}.")
    if isinstance(call.arguments, str):
        raise AgentToolCallError(
            f"The arguments for tool {call.name!r} are not a valid JSON object: {call.arguments!r}. "
            "Send arguments as a JSON object."
        )
    return tool, tool.validate_arguments(call.arguments)
