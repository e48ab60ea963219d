"""`ToolTask`: one tool-using question with deterministic tools, a reference solution and an exact checker.

A task is what an evaluation needs to score an agent without judgement calls: the tools the agent is given
(ordinary codeloop `Tool`s over fixed data), the question, and a checker that accepts exactly the right answer.
Each task also carries a reference solution, Python code written against the same tools, which proves the task
can be solved with them (the test suite runs it, and checks that the checker rejects a near miss).
"""

from __future__ import annotations

import math
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ToolTask", "AnswerCheck", "NumberAnswer", "TextAnswer", "NamesAnswer", "run_reference"]

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


class AnswerCheck(ABC):
    """Decides whether an agent's final answer is right. Subclasses implement `accepts` and `near_misses`."""

    expected: Any

    @abstractmethod
    def accepts(self, answer: Any) -> bool:
        """True when `answer` is the right answer."""

    @abstractmethod
    def near_misses(self) -> list[Any]:
        """Answers close to the right one that must be rejected (used to prove the checker is exact)."""

    def __call__(self, answer: Any) -> bool:
        return self.accepts(answer)


def normalize_text(value: Any) -> str:
    """Case-folded, accent- and punctuation-insensitive, single-spaced text of `value`."""
    text = unicodedata.normalize("NFKD", str(value)).casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w\s:.-]", " ", text)
    return " ".join(text.split()).strip(" .")


def _as_number(answer: Any) -> float | None:
    # A model may answer 41.5, "41.5", "41.50 EUR" or "1,234.5": one number in the text is read as the answer;
    # text holding several numbers is ambiguous and rejected.
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        return float(answer)
    if isinstance(answer, str):
        found = _NUMBER.findall(answer)
        if len(found) == 1:
            return float(found[0].replace(",", ""))
        return None
    if isinstance(answer, Sequence) and len(answer) == 1:
        return _as_number(answer[0])
    try:
        return float(answer)  # numpy scalars, Decimal
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class NumberAnswer(AnswerCheck):
    """A number, within `abs_tol` (default: half a unit of the last decimal the question asks for)."""

    expected: float
    abs_tol: float = 0.01

    def accepts(self, answer: Any) -> bool:
        """True when `answer` is (or is text holding exactly one) number within `abs_tol` of `expected`."""
        value = _as_number(answer)
        return value is not None and math.isfinite(value) and abs(value - self.expected) <= self.abs_tol

    def near_misses(self) -> list[Any]:
        """Off by a little more than the tolerance, off by one, and the number as a list of two."""
        return [self.expected + 3 * self.abs_tol, self.expected - 1, [self.expected, 1]]


@dataclass(frozen=True)
class TextAnswer(AnswerCheck):
    """A short text, compared after `normalize_text` (case, accents, punctuation and spacing do not count)."""

    expected: str

    def accepts(self, answer: Any) -> bool:
        """True when `answer` normalizes to the expected text."""
        if isinstance(answer, list | tuple) and len(answer) == 1:
            answer = answer[0]
        return normalize_text(answer) == normalize_text(self.expected)

    def near_misses(self) -> list[Any]:
        """The text with a word added, the text cut short, and nothing."""
        return [self.expected + " x", self.expected[:-1], ""]


@dataclass(frozen=True)
class NamesAnswer(AnswerCheck):
    """A set of names, given as a list or as text separated by commas, semicolons, "and" or new lines.

    Order does not count unless `ordered`; every expected name must be there and nothing else.
    """

    expected: tuple[str, ...]
    ordered: bool = False

    def _names(self, answer: Any) -> list[str] | None:
        if isinstance(answer, str):
            parts: Iterable[Any] = re.split(r"[,;\n]|\band\b", answer)
        elif isinstance(answer, list | tuple | set | frozenset):
            parts = answer
        else:
            return None
        names = [normalize_text(p) for p in parts]
        return [n for n in names if n]

    def accepts(self, answer: Any) -> bool:
        """True when `answer` names exactly the expected names (in order when `ordered`)."""
        names = self._names(answer)
        if names is None:
            return False
        expected = [normalize_text(n) for n in self.expected]
        return names == expected if self.ordered else sorted(names) == sorted(expected)

    def near_misses(self) -> list[Any]:
        """One name missing, one name too many, and (when order counts) the names reversed."""
        misses: list[Any] = [list(self.expected[:-1]), [*self.expected, "Nobody"]]
        if self.ordered and len(self.expected) > 1:
            misses.append(list(reversed(self.expected)))
        return misses


@dataclass(frozen=True)
class ToolTask:
    """One question an agent answers by calling deterministic tools.

    Args:
        name: Short identifier, unique in its suite (used to select tasks on the command line).
        category: What the task exercises: "lookup", "conversion", "filtering", "decoding" or "planning".
        question: The task given to the agent, as a user would write it.
        tools: The tools the agent gets; their data is fixed, so the right answer never changes.
        check: Accepts exactly the right answer.
        reference: Python code that solves the task with the tools (called by name) and leaves the result in a
            variable named `answer`; it proves the task is solvable and feeds scripted runs.
    """

    name: str
    category: str
    question: str
    tools: tuple[Any, ...]
    check: AnswerCheck
    reference: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(
                f"task name {self.name!r} must be an identifier (it is typed on the command line)"
            )
        if not 2 <= len(self.tools) <= 4:
            raise ValueError(f"task {self.name!r} has {len(self.tools)} tools; a task has 2 to 4")

    @property
    def expected(self) -> Any:
        """The right answer (what the checker compares with)."""
        return self.check.expected

    def is_solved_by(self, answer: Any) -> bool:
        """True when `answer` is the right answer to this task."""
        return self.check.accepts(answer)


def run_reference(task: ToolTask) -> Any:
    """Run `task.reference` in a fresh namespace holding the task's tools and return its `answer`.

    The tools are called directly, in this process: this checks the task, not an executor.
    """
    namespace: dict[str, Any] = {tool.name: tool for tool in task.tools}
    exec(compile(task.reference, f"<reference of {task.name}>", "exec"), namespace)  # noqa: S102 - our own code
    if "answer" not in namespace:
        raise RuntimeError(f"the reference solution of {task.name!r} sets no variable named `answer`")
    return namespace["answer"]
