"""`CalculatorTool`: arithmetic for agents whose actions cannot compute.

A CodeAgent computes in its code. A ToolCallingAgent can only call tools, so the sums, means and conversions a
task needs are done in the model's head, and a small model gets them wrong (the 1.5B model's salary mean was an
invented 7,000). This tool evaluates one arithmetic expression: numbers, `+ - * / // % **`, parentheses, lists,
and `round`, `min`, `max`, `sum`, `abs`, `len`. Nothing else is evaluated: no names, attributes or other calls,
so an expression cannot reach Python's objects, and exponents and results are bounded so it cannot hang.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from .base import Tool

__all__ = ["CalculatorTool", "calculate"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": round,
    "min": min,
    "max": max,
    "sum": sum,
    "abs": abs,
    "len": len,
}
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e300
_MAX_LENGTH = 2000


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value is out of bounds; the message says which part."""


def calculate(expression: str) -> int | float | list[Any]:
    """The value of the arithmetic `expression` (see the module docstring for what it may hold).

    Raises:
        CalculatorError: anything but arithmetic, an unbounded power, a division by zero or a malformed text.
    """
    if len(expression) > _MAX_LENGTH:
        raise CalculatorError(
            f"the expression is {len(expression)} characters long; the limit is {_MAX_LENGTH}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        return _evaluate(tree.body)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None


def _evaluate(node: ast.expr) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(item) for item in node.elts]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if not all(isinstance(v, (int, float)) for v in (left, right)):
            raise CalculatorError("arithmetic operators take numbers, not lists")
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex) or (isinstance(value, (int, float)) and abs(value) > _MAX_MAGNITUDE):
            raise CalculatorError("the result is out of range")
        return value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise CalculatorError(f"{node.func.id}() takes positional arguments only")
        return _FUNCTIONS[node.func.id](*[_evaluate(a) for a in node.args])
    shown = ast.unparse(node)
    raise CalculatorError(
        f"{shown!r} is not allowed: use numbers (copied from the results), + - * / // % **, parentheses, "
        f"lists and {', '.join(_FUNCTIONS)}"
    )


class CalculatorTool(Tool):
    """Evaluates one arithmetic expression; the ToolCallingAgent's way to compute (see the module docstring)."""

    name = "calculate"
    # No example expression here: the 1.5B model called calculate with the description's example verbatim.
    description = (
        "Evaluate an arithmetic expression and return its value. Write the numbers out (copied from tool "
        "results); supports + - * / // % **, parentheses, lists, round, min, max, sum, abs, len."
    )
    inputs = {
        "expression": {"type": "string", "description": "The arithmetic expression, with numbers only."}
    }
    output_type = "any"  # a number, or a list for an expression that is one

    def forward(self, expression: str) -> Any:
        """The value of `expression`, rounded to 10 significant decimals to hide binary-float noise."""
        value = calculate(expression)
        if isinstance(value, float) and math.isfinite(value):
            return float(f"{value:.12g}")
        return value
