"""The built-in suite: every task of the `suite_*` modules, in a fixed order (`codeloop eval builtin`)."""

from __future__ import annotations

from .tasks import ToolTask

__all__ = ["tool_tasks", "first_tool_tasks"]


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
