"""`reference_replies`: a scripted model's replies that solve a suite with its reference solutions.

With it, a suite runs end to end with no real model (in CI, in the README, in tests), through the real agents,
executors and tools:

    from codeloop.testing import ScriptedModel
    model = ScriptedModel(reference_replies(tasks))

A CodeAgent is answered with the task's reference code followed by `final_answer(answer)`, so its code really
calls the tools; a ToolCallingAgent (whose requests carry tool schemas) is answered with a `final_answer` call
holding the reference's answer, computed in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .tasks import ToolTask, run_reference

__all__ = ["reference_replies"]


def _text_of(request: Any) -> str:
    return "\n".join(str(message.content) for message in request.messages)


def reference_replies(tasks: Sequence[ToolTask]) -> Callable[[Any], Any]:
    """A script function (for `ScriptedModel` or `ScriptedLLMServer`) answering each task with its reference.

    The task is recognized by its question in the request's messages; a request matching no task is answered
    with a final answer saying so (which no checker accepts).
    """
    by_length = sorted(tasks, key=lambda task: len(task.question), reverse=True)
    answers: dict[str, Any] = {}

    def reply(request: Any) -> Any:
        text = _text_of(request)
        task = next((t for t in by_length if t.question in text), None)
        if request.tools:
            if task is None:
                return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "no such task"}}]}
            if task.name not in answers:
                answers[task.name] = run_reference(task)
            answer = answers[task.name]
            return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": answer}}]}
        if task is None:
            return "Thought: I do not know this task.\n```python\nfinal_answer('no such task')\n```"
        return f"Thought: I use the tools.\n```python\n{task.reference}\nfinal_answer(answer)\n```"

    return reply
