"""Tools from other frameworks: LangChain tools become codeloop tools.

(MCP tools come from `codeloop.tools.mcp`; JSON exchange is `Tool.to_dict` / `Tool.from_dict` in `sharing`.)
"""

from __future__ import annotations

from typing import Any

from ..errors import ToolDefinitionError
from .base import Tool

__all__ = ["LangChainTool", "tool_from_langchain"]


class LangChainTool(Tool):
    """A LangChain `BaseTool` seen as a codeloop tool; calls go to its `invoke` / `ainvoke`."""

    def __init__(self, langchain_tool: Any) -> None:
        from .schema import clean_schema, python_identifier, tool_inputs_from_schema

        self.langchain_tool = langchain_tool
        self.name = python_identifier(str(langchain_tool.name))
        self.description = (
            getattr(langchain_tool, "description", "") or f"The LangChain tool {self.name}."
        ).strip()
        schema_source = getattr(langchain_tool, "tool_call_schema", None) or getattr(
            langchain_tool, "args_schema", None
        )
        if schema_source is not None and hasattr(schema_source, "model_json_schema"):
            raw = schema_source.model_json_schema()
        elif isinstance(schema_source, dict):
            raw = schema_source
        else:
            raw = {"type": "object", "properties": dict(getattr(langchain_tool, "args", {}) or {})}
        schema = clean_schema(raw)
        self.inputs = tool_inputs_from_schema(schema)
        if schema.get("$defs"):
            self.input_defs = schema["$defs"]
        self.output_type = "any"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the LangChain tool (positional arguments map to its inputs in order)."""
        return self.langchain_tool.invoke(self._payload(args, kwargs))

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the LangChain tool's `ainvoke` (which runs sync tools in a thread itself)."""
        return await self.langchain_tool.ainvoke(self._payload(args, kwargs))

    def _payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        payload = dict(zip(self.inputs, args, strict=False))
        payload.update(kwargs)
        return {
            k: v for k, v in payload.items() if not (v is None and self.inputs.get(k, {}).get("nullable"))
        }


def tool_from_langchain(langchain_tool: Any) -> Tool:
    """Wrap a LangChain tool; `ToolDefinitionError` if the object is not one."""
    if not (hasattr(langchain_tool, "invoke") and hasattr(langchain_tool, "name")):
        raise ToolDefinitionError(
            f"{langchain_tool!r} is not a LangChain tool (it needs .name and .invoke); "
            "pass a langchain_core.tools.BaseTool"
        )
    return LangChainTool(langchain_tool)
