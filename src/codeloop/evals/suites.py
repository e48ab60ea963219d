"""Loading a task suite: `builtin`, a Python module path, a `.py` file, or a folder of them.

A suite module exposes its tasks as `TASKS` (a sequence of `ToolTask`) or as a function `tasks()` returning one:

    # my_suite.py
    from codeloop.evals import NumberAnswer, ToolTask
    TASKS = [ToolTask("double_price", "lookup", "What is twice the price of X?", (get_price, get_tax),
                      NumberAnswer(20.0), "answer = 2 * get_price('X')")]

A folder is every `*.py` file in it not starting with "_", in name order. Anything wrong (a file that does not
import, no tasks, a task without a checker, a name used twice) is a `SuiteError` naming the file and task.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .tasks import AnswerCheck, ToolTask

__all__ = ["SuiteError", "load_suite", "select_tasks"]


class SuiteError(ValueError):
    """A suite cannot be loaded; the message names the file (or module) and the task at fault."""


def load_suite(spec: str) -> list[ToolTask]:
    """The tasks of the suite `spec` names: "builtin", a dotted module path, a `.py` file or a folder.

    Raises:
        SuiteError: the suite does not exist, does not import, or holds a malformed task.
    """
    if spec == "builtin":
        from .builtin import tool_tasks

        return tool_tasks()
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        if not files:
            raise SuiteError(
                f"the suite folder '{path}' holds no .py files (files starting with '_' are skipped)"
            )
        tasks: list[ToolTask] = []
        origin: dict[str, str] = {}
        for file in files:
            for task in _tasks_of(_import_file(file), str(file)):
                if task.name in origin:
                    raise SuiteError(
                        f"task {task.name!r} is defined twice: in {origin[task.name]} and in {file}; "
                        "task names must be unique in a suite"
                    )
                origin[task.name] = str(file)
                tasks.append(task)
        return tasks
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise SuiteError(f"the suite file '{path}' does not exist")
        return _tasks_of(_import_file(path), str(path))
    if not all(part.isidentifier() for part in spec.split(".")):
        raise SuiteError(
            f"{spec!r} is not a suite: give 'builtin', a module path (my_pkg.my_suite), a .py file or a folder"
        )
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise SuiteError(
                f"no module named {spec!r} (and no such file or folder); is it on PYTHONPATH?"
            ) from None
        raise SuiteError(f"the suite module {spec!r} failed to import: {_describe(exc)}") from exc
    except Exception as exc:
        raise SuiteError(f"the suite module {spec!r} failed to import: {_describe(exc)}") from exc
    return _tasks_of(module, getattr(module, "__file__", None) or spec)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (line {frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _import_file(path: Path) -> ModuleType:
    # A unique module name per file, so two suites' "tasks.py" do not replace each other in sys.modules; the
    # file's folder goes on sys.path while it runs, so it can import its neighbours.
    name = f"_codeloop_suite_{abs(hash(str(path.resolve())))}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SuiteError(f"cannot load '{path}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise SuiteError(f"the suite file '{path}' failed to load: {_describe(exc)}") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _tasks_of(module: ModuleType, where: str) -> list[ToolTask]:
    found: Any
    if hasattr(module, "TASKS"):
        found = module.TASKS
    elif callable(getattr(module, "tasks", None)):
        try:
            found = module.tasks()
        except Exception as exc:
            raise SuiteError(f"{where}: tasks() raised {_describe(exc)}") from exc
    else:
        raise SuiteError(
            f"{where} defines no TASKS (a list of ToolTask) and no tasks() function returning one"
        )
    if isinstance(found, ToolTask) or not isinstance(found, Sequence | tuple | list):
        raise SuiteError(f"{where}: TASKS must be a list of ToolTask, got {type(found).__name__}")
    names: set[str] = set()
    for index, task in enumerate(found):
        if not isinstance(task, ToolTask):
            raise SuiteError(f"{where}: task #{index + 1} is a {type(task).__name__}, not a ToolTask")
        if not isinstance(task.check, AnswerCheck):
            raise SuiteError(
                f"{where}: task {task.name!r} has no checker (check={task.check!r:.60}); give it an AnswerCheck "
                "such as NumberAnswer(42.0) or TextAnswer('Paris')"
            )
        if task.name in names:
            raise SuiteError(f"{where}: task name {task.name!r} is used twice; task names must be unique")
        names.add(task.name)
    if not found:
        raise SuiteError(f"{where}: the suite has no tasks")
    return list(found)


def select_tasks(tasks: Sequence[ToolTask], names: Sequence[str] | None) -> list[ToolTask]:
    """The tasks named (in the order given), or all of them; an unknown name is a `SuiteError` listing the known."""
    if not names:
        return list(tasks)
    by_name = {task.name: task for task in tasks}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SuiteError(f"unknown task(s) {', '.join(unknown)}; the suite has: {', '.join(by_name)}")
    return [by_name[name] for name in names]
