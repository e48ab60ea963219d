"""The `final_answer` tool: how a ToolCallingAgent ends its run (a CodeAgent's code calls it too)."""

from __future__ import annotations

from typing import Any

from .base import Tool

__all__ = ["FinalAnswerTool"]


class FinalAnswerTool(Tool):
    """Ends the run; the agent returns `answer` unchanged as its result."""

    name = "final_answer"
    description = "Give the final answer to the task. Calling this ends the run."
    inputs = {"answer": {"type": "any", "description": "The final answer to the task."}}
    output_type = "any"

    def forward(self, answer: Any) -> Any:
        """Return `answer` as it is."""
        return answer
