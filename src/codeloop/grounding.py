"""Which numbers in a tool call the model has actually seen: the check against data it made up.

A small model asked for a total writes its whole plan in one reply — `calculate("(3 * 12.5 + 2 * 4.25) * 0.92")`
beside the `get_order_items` call whose result it has not read yet — and every number in that plan is invented.
A number is *grounded* when it appears in the task or in an observation the model was shown (rounded the way the
model wrote it), or is a small or common constant. A call with ungrounded numbers is not run; the model is told
which numbers it has no source for. A number refused once is accepted when sent again: unit conversions (0.4536
kg per lb, 32 °F) are knowledge, not data, and the model may insist on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["NumberSources", "numbers_in"]

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")
# Counts, percentages, rounding digits and the clock: constants a model rightly writes without a tool.
_COMMON = frozenset({*range(0, 13), 24, 60, 100, 365, 1000, 3600, 86400})


def numbers_in(value: Any) -> list[str]:
    """The unsigned decimal numbers written in `value` (a JSON-like argument), as written, in order."""
    found: list[str] = []
    if isinstance(value, bool) or value is None:
        return found
    if isinstance(value, int | float):
        return [_format(value)]
    if isinstance(value, str):
        return _NUMBER.findall(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            found += numbers_in(item)
    return found


def _format(number: float) -> str:
    text = repr(abs(number))
    return text[:-2] if text.endswith(".0") else text


class NumberSources:
    """The numbers a run has shown the model so far, and the ones it was already told it has no source for."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.known: set[float] = set()
        self.refused: set[str] = set()
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        """Record every number written in `text` (a task, an observation) as seen by the model."""
        for number in _NUMBER.findall(text or ""):
            self.known.add(float(number))

    def grounded(self, written: str) -> bool:
        """Whether the number `written` (e.g. "0.92") was seen, up to the rounding it is written with."""
        value = float(written)
        if written in self.refused or value in self.known or value in _COMMON:
            return True
        decimals = len(written.partition(".")[2])
        return any(round(seen, decimals) == value for seen in self.known if decimals < 6)

    def ungrounded(self, arguments: Any) -> list[str]:
        """The numbers in `arguments` with no source yet (each once, in order); they count as refused from now."""
        missing = list(dict.fromkeys(n for n in numbers_in(arguments) if not self.grounded(n)))
        self.refused.update(missing)
        return missing
