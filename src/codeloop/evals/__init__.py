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

from .runner import AGENT_KINDS, AgentSummary, run_eval, summarize, write_plot
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
    "summarize",
    "write_plot",
    "AgentSummary",
    "AGENT_KINDS",
    "load_suite",
    "select_tasks",
    "SuiteError",
]


def tool_tasks(names: list[str] | None = None) -> list[ToolTask]:
    """The tool-use suite, in a fixed order; with `names`, only those tasks (in the order given).

    Raises:
        ValueError: a name is not a task of the suite (the message lists the known ones).
    """
    from .suite_browsing import BROWSING_TASKS
    from .suite_sequences import SEQUENCE_TASKS
    from .suite_trading import TRADING_TASKS

    tasks = [*first_tool_tasks(), *SEQUENCE_TASKS, *TRADING_TASKS, *BROWSING_TASKS]
    if names is None:
        return tasks
    by_name = {task.name: task for task in tasks}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; the suite has: {', '.join(by_name)}")
    return [by_name[name] for name in names]


def first_tool_tasks() -> list[ToolTask]:
    """The suite's first 22 tasks (look-ups, conversions, filtering, decoding, planning), in a fixed order.

    `bench/real_tasks.py` runs these by default, so its figures stay comparable with earlier measurements.
    """
    from .suite_lookups import LOOKUP_TASKS
    from .suite_reasoning import REASONING_TASKS

    return [*LOOKUP_TASKS, *REASONING_TASKS]
