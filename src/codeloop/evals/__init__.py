"""Evaluation tasks for agents: tool-using questions with fixed data and exact answers.

    from codeloop.evals import tool_tasks
    for task in tool_tasks():
        answer = agent_for(task.tools).run(task.question)
        print(task.name, task.is_solved_by(answer))

`tool_tasks()` is the suite `bench/real_tasks.py` runs on a real model: look-ups, unit and currency
conversions, filtering, decoding and small planning problems, each over 2-4 deterministic tools. Nothing here is
imported by `import codeloop`.
"""

from __future__ import annotations

from .tasks import AnswerCheck, NamesAnswer, NumberAnswer, TextAnswer, ToolTask, run_reference

__all__ = [
    "ToolTask",
    "AnswerCheck",
    "NumberAnswer",
    "TextAnswer",
    "NamesAnswer",
    "run_reference",
    "tool_tasks",
]


def tool_tasks(names: list[str] | None = None) -> list[ToolTask]:
    """The tool-use suite, in a fixed order; with `names`, only those tasks (in the order given).

    Raises:
        ValueError: a name is not a task of the suite (the message lists the known ones).
    """
    from .suite_lookups import LOOKUP_TASKS
    from .suite_reasoning import REASONING_TASKS

    tasks = [*LOOKUP_TASKS, *REASONING_TASKS]
    if names is None:
        return tasks
    by_name = {task.name: task for task in tasks}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; the suite has: {', '.join(by_name)}")
    return [by_name[name] for name in names]
