"""What a tool costs on top of the function it wraps, and what an MCP round trip costs.

    .venv/bin/python bench/tools_overhead.py

Prints, side by side: a plain function call; the same function called as a `@tool` (as a CodeAgent's code
does); `validate_arguments` + call (as a ToolCallingAgent does with a model's JSON); a tool with a
dataclass argument given a dict; building the tool (schema generation); and one call to a tool of the
reference `mcp-server-time` over stdio (skipped when the `mcp` extra is missing).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable

from codeloop.tools import tool


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


def norm(p: Point) -> int:
    """Manhattan norm.

    Args:
        p: The point.
    """
    return abs(p.x) + abs(p.y)


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """Median over 5 rounds of the time per call, in microseconds."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(rounds)


def main() -> None:
    add_tool = tool(add)
    norm_tool = tool(norm)
    rows: list[tuple[str, float]] = []
    plain = per_call_us(lambda: add(2, 3), 200_000)
    rows.append(("plain function call", plain))
    rows.append(("@tool call (code agent)", per_call_us(lambda: add_tool(2, 3), 100_000)))
    rows.append(
        (
            "validate_arguments + call (tool-calling agent)",
            per_call_us(lambda: add_tool(**add_tool.validate_arguments({"a": "2", "b": 3})), 50_000),
        )
    )
    rows.append(
        (
            "@tool call, dict -> dataclass argument",
            per_call_us(lambda: norm_tool(p={"x": 3, "y": -4}), 20_000),
        )
    )
    rows.append(("building the tool (@tool on a function)", per_call_us(lambda: tool(add), 500)))
    try:
        from codeloop.tools import MCPClient

        client = MCPClient({"command": sys.executable, "args": ["-m", "mcp_server_time"]})
        now = {t.name: t for t in client.connect()}["get_current_time"]
        now(timezone="UTC")  # warm
        rows.append(
            ("MCP tool call over stdio (mcp-server-time)", per_call_us(lambda: now(timezone="UTC"), 50))
        )
        client.disconnect()
    except ImportError:
        print("(MCP skipped: install the `mcp` extra)")
    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  {'µs/call':>10}  {'× plain':>9}")
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:>10.2f}  {micros / plain:>9.1f}")


if __name__ == "__main__":
    main()
