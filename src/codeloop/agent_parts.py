"""What an agent is built from, checked when it is built: its tool table, managed agents and executor choice.

Every check here runs in the agent's constructor, so a mistake (two tools with one name, a tool that hides a
builtin, an executor name with a typo, an SDK that is not installed) is reported before any run starts and
before any model call is paid for. The agent loop itself lives in `agents.py`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .errors import ToolDefinitionError

__all__ = [
    "build_tool_table",
    "check_code_tool_name",
    "check_executor",
    "managed_agent_tool",
]

_PYTHON_BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))


def build_tool_table(
    tools: Sequence[Any], managed_agents: Sequence[Any], defaults: Sequence[Any] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(name -> tool, name -> managed agent) for an agent; raises if one name would hide another.

    `defaults` (the base tools) come first and a tool in `tools` with the same name takes its place; any
    other repeated name, a `final_answer` that is not a `FinalAnswerTool`, or a managed agent named like a
    tool raises `ToolDefinitionError` saying what to rename. Managed agents appear in the tool table as tools.
    """
    from .tools import FinalAnswerTool

    for t in tools:
        if not hasattr(t, "name") or not hasattr(t, "to_function_spec"):
            raise TypeError(
                f"{t!r} is not a tool: decorate the function with @tool or subclass codeloop.Tool"
            )
    table: dict[str, Any] = {t.name: t for t in defaults}
    given: dict[str, Any] = {}
    for t in tools:
        if t.name in given:
            raise ToolDefinitionError(
                f"two tools are named {t.name!r}: {given[t.name]!r} and {t!r}. The model calls tools by name, "
                "so one would hide the other; rename one (@tool(name=...) or its `name` attribute)."
            )
        if t.name == "final_answer" and not isinstance(t, FinalAnswerTool):
            raise ToolDefinitionError(
                f"the tool {t!r} is named 'final_answer', which would replace the agent's own final_answer "
                "(how a run ends). Rename it; to check answers use final_answer_checks=[...], to change "
                "how answers are given subclass codeloop.tools.FinalAnswerTool."
            )
        given[t.name] = table[t.name] = t
    managed: dict[str, Any] = {}
    for agent in managed_agents:
        if not agent.name or not agent.description:
            raise ValueError(
                f"a managed agent needs a name and a description (got name={agent.name!r}); "
                "pass name=... and description=... when creating it"
            )
        if agent.name in managed:
            raise ToolDefinitionError(
                f"two managed agents are named {agent.name!r}; give each a distinct name=..."
            )
        if agent.name in table or agent.name == "final_answer":
            raise ToolDefinitionError(
                f"the managed agent {agent.name!r} has the name of a tool; the model calls both by name, "
                "so rename the agent (name=...) or the tool."
            )
        managed[agent.name] = agent
        table[agent.name] = managed_agent_tool(agent)
    return table, managed


def check_code_tool_name(name: str, tool: Any, authorized_imports: Sequence[str]) -> None:
    """Refuse a CodeAgent tool named like a Python builtin or a module its code may import.

    Tools are plain names in the agent's Python: one named like a builtin would silently take its place, one
    named like a module would be replaced by `import x`, and the model's ordinary code would break.
    """
    if name in _PYTHON_BUILTINS:
        raise ToolDefinitionError(
            f"the tool {tool!r} is named {name!r}, like the Python builtin {name}(); in a CodeAgent's code "
            f"it would hide the builtin. Rename the tool, e.g. @tool(name='{name}_tool') or a `name` attribute."
        )
    if name in {m.split(".")[0] for m in authorized_imports if m != "*"}:
        raise ToolDefinitionError(
            f"the tool {tool!r} is named {name!r}, like the module the agent's code may `import {name}`, "
            "which would replace the tool (or the tool the module). Rename the tool, e.g. "
            f"@tool(name='{name}_tool') or a `name` attribute."
        )


def check_executor(spec: Any, kwargs: dict[str, Any]) -> None:
    """Refuse an unknown executor name, or one whose SDK is not installed, before any run (or paid call)."""
    from .executors.kinds import check_executor_choice

    check_executor_choice(spec, kwargs)


def managed_agent_tool(agent: Any) -> Any:
    """A managed agent seen as a tool named after it: the manager gives it a task and gets its report back."""
    from .tools import Tool

    class ManagedAgentTool(Tool):
        """A managed agent seen as a tool: the manager gives it a task and gets its report back."""

        name = agent.name or "agent"
        description = agent.description or ""
        inputs = {
            "task": {
                "type": "string",
                "description": "The task, in detail: the agent does not see your context.",
            },
            "additional_args": {
                "type": "object",
                "description": "Optional values (data, files) the agent can use as variables.",
                "nullable": True,
            },
        }
        output_type = "string"

        def forward(self, task: str, additional_args: dict[str, Any] | None = None) -> str:
            return self._report(lambda: agent.run(task, additional_args=additional_args))

        def resume_run(self, run_id: str, approvals: dict[str, Any]) -> str:
            """Continue the managed agent's run `run_id`, paused for approval, with `approvals` for its calls."""
            return self._report(lambda: agent.resume(run_id, approvals=approvals))

        def _report(self, run: Any) -> str:
            from .approval import AwaitingApproval, ManagedAgentPaused

            try:
                output = run()
            except AwaitingApproval as paused:  # the manager pauses with it (see ManagedAgentPaused)
                raise ManagedAgentPaused(agent.name, paused.result.run_id, paused.pending) from None
            return f"Here is the final answer from your managed agent '{agent.name}':\n{output}"

    return ManagedAgentTool()
