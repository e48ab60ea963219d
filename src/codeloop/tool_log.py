"""What the tools returned during one code step, kept so a failing step can show it to the model.

A small model often indexes a tool's result with keys it guessed (`flight["departure"]` where the tool returned
`dep_local`) and then repeats the same guess at every retry. Showing the failing step's tool calls with what they
returned gives it the real keys and values at once, so it can fix the code instead of calling the tool again.

Results are previewed when the tool returns, before agent code can touch them, and only built-in data is
rendered: any other object shows as `<TypeName>`, so no agent-defined `__repr__` ever runs on the host.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

__all__ = ["ToolCallLog", "preview"]

_PLAIN = (str, int, float, bool, type(None))
_CONTAINERS = (dict, list, tuple, set, frozenset)


_KEY_ERROR = re.compile(r"^KeyError: (.+)$", re.MULTILINE)


def _key_reprs(value: Any) -> tuple[str, tuple[str, ...]] | None:
    """("result", keys) for a dict, ("items", keys) for a list of dicts (its first one's), else None."""
    if isinstance(value, dict) and value and all(isinstance(k, _PLAIN) for k in value):
        return "result", tuple(repr(k) for k in list(value)[:20])
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        inner = _key_reprs(value[0])
        return ("items", inner[1]) if inner else None
    return None


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
        self._keys: list[tuple[str, str, tuple[str, ...]]] = []  # (tool, "result" | "items", key reprs)
        self._lock = threading.Lock()  # tools called from threads in agent code log concurrently
        self.calls_in_run = 0
        """Tool calls made since `start_run` (every call, repeated ones too)."""
        self.names_in_run: set[str] = set()
        """The names of the tools called since `start_run` (failed calls included)."""

    def start_run(self) -> None:
        """Forget the previous run: its calls and its last step."""
        with self._lock:
            self._lines.clear()
            self._keys.clear()
            self.calls_in_run = 0
            self.names_in_run.clear()

    def clear(self) -> None:
        """Forget the calls of the previous step."""
        with self._lock:
            self._lines.clear()
            self._keys.clear()

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
                self._add(f"{name}({shown}) raised {type(exc).__name__}", name)
                raise
            self._add(f"{name}({shown}) -> {preview(result)}", name, _key_reprs(result))
            return result

        logged.__name__ = logged.__qualname__ = name
        description = getattr(tool, "description", None)
        if isinstance(description, str):
            logged.description = description  # type: ignore[attr-defined]
        return logged

    def _add(self, line: str, name: str = "", keys: tuple[str, tuple[str, ...]] | None = None) -> None:
        with self._lock:
            self.calls_in_run += 1
            self.names_in_run.add(name)
            if line not in self._lines and len(self._lines) < self.MAX_CALLS:
                self._lines.append(line)
                if keys is not None:
                    self._keys.append((name, *keys))

    def missing_key_hint(self, error: str) -> str:
        """For a step that failed with `KeyError: k`: which tool results lack `k`, and the keys they have.

        The tool-call lines below the error hold the same keys, but a small model reads the error line and
        guesses again; naming the real keys right under it is what gets the next step to use them.
        """
        found = _KEY_ERROR.search(error)
        if found is None:
            return ""
        missing = found.group(1).strip()
        with self._lock:
            hints = [
                f"{missing} is not a key of {'the dicts in ' if kind == 'items' else ''}what {name} returned; "
                f"{'their' if kind == 'items' else 'its'} keys are: {', '.join(keys)}."
                for name, kind, keys in self._keys
                if missing not in keys
            ]
        return "\n".join(dict.fromkeys(hints))

    def render(self) -> str:
        """The step's calls as text for the model, or "" when it called no tool."""
        with self._lock:
            if not self._lines:
                return ""
            return "Tool calls in this step returned:\n" + "\n".join(f"- {line}" for line in self._lines)
