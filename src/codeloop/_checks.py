"""Checks of numeric settings (budgets, limits, timeouts), made when an object is built.

A negative or zero budget used to be accepted and show up later as a run that stopped at once, never stopped,
or failed after a paid model call. These checks fail at construction and name the setting.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_limit"]


def check_limit(
    name: str, value: Any, *, integer: bool = False, allow_zero: bool = False, optional: bool = True
) -> None:
    """Raise unless `value` is a finite number above 0 (at least 0 with `allow_zero`), or None if `optional`.

    `integer` also requires a whole number. `name` is the setting as the user wrote it.
    """
    if value is None and optional:
        return
    none = " (or None for no limit)" if optional else ""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise TypeError(f"{name} must be {kind}{none}, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "above 0"
        raise ValueError(f"{name} must be {bound}{none}, got {value!r}")
