"""Tools: the `Tool` base class, the `@tool` decorator and the built-in `final_answer`.

Names load on first use so `import codeloop` stays fast; pydantic and docstring-parser are imported only
when the first tool is created.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import FunctionTool, Tool, tool
    from .calculator import CalculatorTool
    from .final_answer import FinalAnswerTool
    from .interop import LangChainTool
    from .mcp import MCPClient, MCPConnectionError, MCPTool, MCPToolError, ToolCollection
    from .sharing import ToolLoadError, load_tool, push_tool_to_hub, save_tool
    from .toolbox import (
        BUILTIN_TOOLS,
        PythonInterpreterTool,
        SpeechToTextTool,
        UserInputTool,
        base_tools,
        load_builtin_tool,
        load_builtin_tools,
    )
    from .web import DuckDuckGoSearchTool, VisitWebpageTool, WebSearchTool, WebToolError, WikipediaSearchTool

__all__ = [
    "Tool",
    "FunctionTool",
    "tool",
    "FinalAnswerTool",
    "CalculatorTool",
    "MCPClient",
    "MCPTool",
    "MCPToolError",
    "MCPConnectionError",
    "ToolCollection",
    "BUILTIN_TOOLS",
    "PythonInterpreterTool",
    "SpeechToTextTool",
    "UserInputTool",
    "base_tools",
    "load_builtin_tool",
    "load_builtin_tools",
    "VisitWebpageTool",
    "WebSearchTool",
    "DuckDuckGoSearchTool",
    "WebToolError",
    "WikipediaSearchTool",
    "LangChainTool",
    "ToolLoadError",
    "load_tool",
    "push_tool_to_hub",
    "save_tool",
]

_WHERE = {
    "Tool": ".base",
    "FunctionTool": ".base",
    "tool": ".base",
    "FinalAnswerTool": ".final_answer",
    "CalculatorTool": ".calculator",
    "MCPClient": ".mcp",
    "MCPTool": ".mcp",
    "MCPToolError": ".mcp",
    "MCPConnectionError": ".mcp",
    "ToolCollection": ".mcp",
    "BUILTIN_TOOLS": ".toolbox",
    "PythonInterpreterTool": ".toolbox",
    "SpeechToTextTool": ".toolbox",
    "UserInputTool": ".toolbox",
    "base_tools": ".toolbox",
    "load_builtin_tool": ".toolbox",
    "load_builtin_tools": ".toolbox",
    "VisitWebpageTool": ".web",
    "WebSearchTool": ".web",
    "DuckDuckGoSearchTool": ".web",
    "WebToolError": ".web",
    "WikipediaSearchTool": ".web",
    "LangChainTool": ".interop",
    "ToolLoadError": ".sharing",
    "load_tool": ".sharing",
    "push_tool_to_hub": ".sharing",
    "save_tool": ".sharing",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'codeloop.tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
