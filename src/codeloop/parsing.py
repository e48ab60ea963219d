"""Extract actions from what real models write: code blocks for CodeAgent, JSON tool calls as a fallback."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import AgentParsingError
from .models.base import ToolCall

__all__ = ["extract_code", "extract_json_tool_calls", "CODE_FORMAT_HELP", "TOOL_CALL_FORMAT_HELP"]

CODE_FORMAT_HELP = (
    "Reply with a short 'Thought:' and then one Python code block, exactly like this:\n"
    "Thought: I will compute the answer.\n"
    "```python\n"
    "result = 6 * 7\n"
    "final_answer(result)\n"
    "```\n"
    "Call final_answer(...) inside the code when you have the answer."
)

TOOL_CALL_FORMAT_HELP = (
    "Call a tool. If you cannot use native tool calls, reply with one JSON object like this:\n"
    '{"name": "tool_name", "arguments": {"arg": "value"}}\n'
    'When you have the answer, call the "final_answer" tool with {"answer": ...}.'
)

# A fenced block whose info string is python/py (or empty), closed by a fence or by the end of the text,
# which covers replies cut at a stop sequence before the closing fence.
_FENCE = re.compile(
    r"```[ \t]*(python|py|python3)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE
)
_CODE_TAG = re.compile(r"<code>\s*(.*?)\s*(?:</code>|\Z)", re.DOTALL)
_END_MARKERS = ("<end_code>", "</code>")


def extract_code(text: str) -> str:
    """The Python code in a model reply; several blocks are joined in order.

    Accepts ```python / ```py fences (and bare fences when nothing better is there), `<code>...</code>`, and a
    final block whose closing fence is missing. Raises `AgentParsingError` with the expected format otherwise.
    """
    blocks = [code for tag, code in _FENCE.findall(text) if tag]
    if not blocks:
        blocks = [m.group(1) for m in _CODE_TAG.finditer(text)]
    if not blocks:
        blocks = [code for tag, code in _FENCE.findall(text) if not tag and _looks_like_python(code)]
    blocks = [_strip_markers(b) for b in blocks]
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        raise AgentParsingError(f"No code block was found in your reply.\n{CODE_FORMAT_HELP}")
    return "\n\n".join(blocks)


def _strip_markers(code: str) -> str:
    for marker in _END_MARKERS:
        code = code.replace(marker, "")
    return code.strip("\n").rstrip()


def _looks_like_python(code: str) -> bool:
    # A bare fence may hold prose or output; accept it when it compiles as Python.
    try:
        compile(code, "<reply>", "exec")
    except SyntaxError:
        return False
    return bool(code.strip())


def extract_json_tool_calls(text: str) -> list[ToolCall]:
    """Tool calls written as JSON in plain text, for models without native tool calling.

    Finds every JSON object in `text` shaped like {"name": ..., "arguments": {...}} (also "tool"/"args"/
    "parameters", or {"function": {...}}). Raises `AgentParsingError` with the expected format if none is found.
    """
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    index = 0
    while (start := text.find("{", index)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        for item in value if isinstance(value, list) else [value]:
            call = _as_tool_call(item, len(calls))
            if call is not None:
                calls.append(call)
        index = end
    if not calls:
        raise AgentParsingError(f"No tool call was found in your reply.\n{TOOL_CALL_FORMAT_HELP}")
    return calls


def _as_tool_call(value: Any, index: int) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name", value.get("tool", value.get("tool_name")))
    if not isinstance(name, str):
        return None
    args = value.get("arguments", value.get("args", value.get("parameters", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    return ToolCall(
        id=f"text_call_{index}", name=name, arguments=args if isinstance(args, (dict, str)) else {}
    )
