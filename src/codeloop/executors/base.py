"""The executor contract: where a CodeAgent's code runs.

An executor holds a persistent namespace: variables, functions, classes and imports survive from one `run` to
the next. Tools are sent once with `send_tools` and are callable by name from the code; `final_answer(x)` is
always available and ends the run with the object `x`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from ..errors import ExecutionError

__all__ = ["ExecutionResult", "ExecutionError", "Executor", "ExecutorFactory"]


@dataclass
class ExecutionResult:
    """What one code action produced.

    `output` is the value passed to `final_answer` when `is_final_answer` is true, otherwise the value of
    the last expression (or None). `logs` is everything the code printed, already truncated for the model.
    """

    output: Any
    logs: str
    is_final_answer: bool = False
    variables: str = field(default="", compare=False)
    """One line naming the variables defined after the step, with types and sizes ("" if none or unknown);
    shown to the model when the step's own output is masked (`codeloop.compaction`)."""


@runtime_checkable
class Executor(Protocol):
    """What the agent needs from a place that runs code."""

    def send_tools(self, tools: dict[str, Any]) -> None:
        """Make these callables available to the code under their names (plus `final_answer`)."""
        ...

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Put these values into the code's namespace."""
        ...

    def run(self, code: str) -> ExecutionResult:
        """Run `code` in the persistent namespace; raise `ExecutionError` with the model-facing message."""
        ...

    def close(self) -> None:
        """Release processes, threads and other resources. Safe to call twice."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class ExecutorFactory(Protocol):
    """Something that makes a new executor per agent (e.g. a `SandboxPool`); `CodeAgent(executor=factory)` takes
    one executor from it when it first runs code and closes that executor when the agent is closed."""

    def new_executor(self) -> Executor:
        """A new executor, owned by the caller (who closes it)."""
        ...
