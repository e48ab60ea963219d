"""What the tools returned during one code step, kept so a failing step can show it to the model.

A small model often indexes a tool's result with keys it guessed (`flight["departure"]` where the tool returned
`dep_local`) and then repeats the same guess at every retry. Showing the failing step's tool calls with what they
returned gives it the real keys and values at once, so it can fix the code instead of calling the tool again.

Results are previewed when the tool returns, before agent code can touch them, and only built-in data is
rendered: any other object shows as `<TypeName>`, so no agent-defined `__repr__` ever runs on the host.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["ToolCallLog", "preview"]

_PLAIN = (str, int, float, bool, type(None))
_CONTAINERS = (dict, list, tuple, set, frozenset)


def preview(value: Any, budget: int = 300) -> str:
    """`value` as Python-like text of at most about `budget` characters; only built-in data is rendered."""
    out: list[str] = []
    _render(value, out, [budget], depth=0)
    return "".join(out)


def _render(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    def emit(text: str) -> None:
        out.append(text)
        budget[0] -= len(text)

    kind = type(value)
    if any(kind is plain for plain in _PLAIN):
        text = (
            repr(value)
            if kind is not int or value.bit_length() <= 256
            else f"<int of {value.bit_length()} bits>"
        )
        emit(text if len(text) <= max(budget[0], 8) else text[: max(budget[0], 8)] + "...")
        return
    if not any(kind is container for container in _CONTAINERS) or depth > 4:
        emit(f"<{kind.__name__}>")
        return
    if (kind is set or kind is frozenset) and not value:
        emit(f"{kind.__name__}()")
        return
    opening, closing = "[]" if kind is list else "()" if kind is tuple else "{}"
    emit(opening)
    items = list(value.items()) if kind is dict else list(value)
    for index, item in enumerate(items):
        if budget[0] <= 0:
            emit(f"... {len(items) - index} more")
            break
        if index:
            emit(", ")
        if kind is dict:
            _render(item[0], out, budget, depth + 1)
            emit(": ")
            _render(item[1], out, budget, depth + 1)
        else:
            _render(item, out, budget, depth + 1)
    emit(closing)


class ToolCallLog:
    """The tool calls of the current step, each as `name(args) -> result preview`, in call order."""

    MAX_CALLS = 8
    """At most this many distinct calls are kept per step (the first ones: they are what later code used)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()  # tools called from threads in agent code log concurrently

    def clear(self) -> None:
        """Forget the calls of the previous step."""
        with self._lock:
            self._lines.clear()

    def wrap(self, name: str, tool: Any) -> Any:
        """A callable that calls `tool` and logs the call; executors read its `description` like the tool's."""

        @functools.wraps(tool, assigned=("__doc__",), updated=())
        def logged(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join(
                [preview(a, 60) for a in args] + [f"{k}={preview(v, 60)}" for k, v in kwargs.items()]
            )
            try:
                result = tool(*args, **kwargs)
            except Exception as exc:
                self._add(f"{name}({shown}) raised {type(exc).__name__}")
                raise
            self._add(f"{name}({shown}) -> {preview(result)}")
            return result

        logged.__name__ = logged.__qualname__ = name
        description = getattr(tool, "description", None)
        if isinstance(description, str):
            logged.description = description  # type: ignore[attr-defined]
        return logged

    def _add(self, line: str) -> None:
        with self._lock:
            if line not in self._lines and len(self._lines) < self.MAX_CALLS:
                self._lines.append(line)

    def render(self) -> str:
        """The step's calls as text for the model, or "" when it called no tool."""
        with self._lock:
            if not self._lines:
                return ""
            return "Tool calls in this step returned:\n" + "\n".join(f"- {line}" for line in self._lines)
