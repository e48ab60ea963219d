"""Evaluation tasks for agents: tool-using questions with fixed data and exact answers.

    from codeloop.evals import tool_tasks
    for task in tool_tasks():
        answer = agent_for(task.tools).run(task.question)
        print(task.name, task.is_solved_by(answer))

`tool_tasks()` is the built-in suite (`codeloop eval builtin`): look-ups, unit and currency conversions,
filtering, decoding, small planning problems, DNA sequences, trading and ledgers, and browsing a pre-generated
website, each over 2-4 deterministic tools. `run_eval` runs a suite with CodeAgent and ToolCallingAgent;
`load_suite` loads one from a module, file or folder. Nothing here is imported by `import codeloop`.
"""

from __future__ import annotations

from .builtin import first_tool_tasks, tool_tasks
from .runner import AGENT_KINDS, AgentSummary, arun_eval, run_eval, summarize, write_plot
from .suites import SuiteError, load_suite, select_tasks
from .tasks import AnswerCheck, NamesAnswer, NumberAnswer, TextAnswer, ToolTask, run_reference

__all__ = [
    "ToolTask",
    "AnswerCheck",
    "NumberAnswer",
    "TextAnswer",
    "NamesAnswer",
    "run_reference",
    "tool_tasks",
    "first_tool_tasks",
    "run_eval",
    "arun_eval",
    "summarize",
    "write_plot",
    "AgentSummary",
    "AGENT_KINDS",
    "load_suite",
    "select_tasks",
    "SuiteError",
]
