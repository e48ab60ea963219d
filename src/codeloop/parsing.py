"""Extract actions from what real models write: code blocks for CodeAgent, JSON tool calls as a fallback."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection
from typing import Any

from ._text import short_repr
from .errors import AgentParsingError
from .models.base import ToolCall

__all__ = [
    "extract_code",
    "extract_json_tool_calls",
    "mentions_tool_call",
    "drop_tool_redefinitions",
    "CODE_FORMAT_HELP",
    "TOOL_CALL_FORMAT_HELP",
]

CODE_FORMAT_HELP = (
    "Reply with a short 'Thought:' and then one Python code block, exactly like this:\n"
    "Thought: I will compute the answer.\n"
    "```python\n"
    "result = 6 * 7\n"
    "final_answer(result)\n"
    "```\n"
    "Call final_answer(...) inside the code when you have the answer."
)

# Angle-bracket placeholders cannot parse as JSON, so a model that echoes this help runs nothing by mistake.
TOOL_CALL_FORMAT_HELP = (
    "Call a tool. If you cannot use native tool calls, write each call as one JSON object:\n"
    '{"name": <tool name>, "arguments": {<argument name>: <value>, ...}}\n'
    'When you have the answer, call "final_answer" with {"answer": <the value>}, alone, in a reply of its own.'
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


def drop_tool_redefinitions(code: str, tool_names: Collection[str]) -> tuple[str, list[str]]:
    """`code` without its top-level lines that only re-create given tools, and the names of the tools they named.

    Two such lines are dropped (each replaced by `pass` and blank lines, so line numbers stay right):
    - `from <anything> import <tools>`: the real model wrote `from tools import get_road_distance_km` before
      calling the tool it was given, and sent it again at every step after the executor refused it;
    - `def <tool>(...): ...`: it pasted a tool's stub from the prompt, with a body of its own, at every step.
    The executors refuse any rebinding of a tool, so that a redefinition never silently replaces the real one;
    here the intent is plain, the real tool wins and the rest of the step runs. An import that renames a tool
    or also imports anything else, and any other binding, is left for the executors to refuse.
    """
    if not any(name in code for name in tool_names) or ("import" not in code and "def" not in code):
        return code, []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, []  # the executor reports it, with the line
    lines = code.splitlines(keepends=True)
    dropped: list[str] = []
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.names:
            if all(a.name in tool_names and a.asname in (None, a.name) for a in node.names):
                names = [a.name for a in node.names]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in tool_names:
            names = [node.name]
        if not names or node.end_lineno is None:
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        last = node.end_lineno - 1
        if isinstance(node, ast.ImportFrom) and ";" in "".join(lines[first : last + 1]):
            continue  # `from tools import f; x = 1`: more than the import on the line
        lines[first : last + 1] = ["pass\n", *["\n"] * (last - first)]
        dropped += names
    return ("".join(lines), dropped) if dropped else (code, [])


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

    Accepted, in this order:

    - every well-formed top-level JSON object shaped like {"name": ..., "arguments": {...}} (also "tool"/"args"/
      "parameters", or {"function": {...}}), alone or in a JSON list; an object nested as a value inside
      another object is never taken as a call;
    - a broken `final_answer` call beside well-formed calls is kept as a `final_answer` call whose arguments
      are its raw text: the agent refuses it (final_answer comes alone) and still runs the other calls;
    - when the reply holds no such call, one bare {"answer": <value>} object (no other key) is a `final_answer`
      call with that value;
    - failing that, one `final_answer(<literal>)` / `Final answer(<literal>)` whose argument is a JSON or Python
      literal (optionally `answer=<literal>`) is a `final_answer` call with that value.

    Raises `AgentParsingError` with the expected format if nothing is found, and — without running anything —
    when a broken JSON fragment in the reply mentions a "name" (a call the model meant but wrote wrong), quoting
    the problem. Braces in prose that mention no name are ignored.
    """
    calls: list[ToolCall] = []
    answers: list[Any] = []
    broken: list[tuple[str, str]] = []  # (decoder message, fragment)
    decoder = json.JSONDecoder()
    index = 0
    while (start := text.find("{", index)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            # Skip the whole broken fragment: decoding from a brace inside it would pick calls out of a
            # value the model did not finish (or nested in something else), and run them.
            end = _end_of_fragment(text, start)
            broken.append((f"{exc.msg} (at character {exc.pos - start + 1} of it)", text[start:end]))
            index = end
            continue
        call = _as_tool_call(value, len(calls))
        if call is not None:
            calls.append(call)
        elif isinstance(value, dict) and set(value) == {"answer"}:
            answers.append(value["answer"])
        index = end
    meant_calls = [(msg, frag) for msg, frag in broken if _NAME_KEY.search(frag)]
    if calls:
        # A final_answer written beside real calls is refused whatever it holds (it came before their results),
        # so its broken JSON (often a variable name as the value) must not stop the real calls from running.
        early_answers = [frag for _, frag in meant_calls if _is_lone_final_answer(frag)]
        meant_calls = [(msg, frag) for msg, frag in meant_calls if not _is_lone_final_answer(frag)]
        if not meant_calls:
            calls += [
                ToolCall(id=f"text_call_{len(calls)}", name="final_answer", arguments=f)
                for f in early_answers
            ]
    if meant_calls:
        msg, fragment = meant_calls[0]
        raise AgentParsingError(
            f"Your reply has a tool call that is not valid JSON, so nothing was run: {msg}: "
            f"{short_repr(fragment, 300)}\nExpected form:\n{TOOL_CALL_FORMAT_HELP}"
        )
    if calls:
        return calls
    if len(answers) == 1:
        return [ToolCall(id="text_call_0", name="final_answer", arguments={"answer": answers[0]})]
    written = _final_answer_written_as_call(text)
    if written is not None:
        return [ToolCall(id="text_call_0", name="final_answer", arguments={"answer": written[0]})]
    problem = f" (not valid JSON: {broken[0][0]}: {short_repr(broken[0][1], 300)})" if broken else ""
    raise AgentParsingError(f"No tool call was found in your reply{problem}.\n{TOOL_CALL_FORMAT_HELP}")


_NAME_KEY = re.compile(r"""["'](?:name|tool|tool_name|function)["']\s*:""")
_FINAL_ANSWER_NAME = re.compile(r"""["'](?:name|tool|tool_name|function)["']\s*:\s*["']final_answer["']""")
_FINAL_ANSWER_CALL = re.compile(r"final[ _]answer\s*\((.*)\)", re.IGNORECASE | re.DOTALL)
_ANSWER_KEYWORD = re.compile(r"^\s*answer\s*=")


def _is_lone_final_answer(fragment: str) -> bool:
    """Whether a broken JSON fragment is one final_answer call (names no other tool)."""
    return len(_NAME_KEY.findall(fragment)) == 1 and _FINAL_ANSWER_NAME.search(fragment) is not None


def mentions_tool_call(text: str) -> bool:
    """Whether `text` holds something written as a JSON tool call (a "name"-like key), well-formed or not."""
    return _NAME_KEY.search(text) is not None


def _end_of_fragment(text: str, start: int) -> int:
    """Index just past the brace that closes the one at `start` (outside strings), or the end of the text."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _final_answer_written_as_call(text: str) -> tuple[Any] | None:
    """(value,) when the reply holds exactly one `final_answer(<literal>)`; None when it is absent or unclear."""
    found = _FINAL_ANSWER_CALL.findall(text)
    if len(found) != 1:
        return None
    argument = _ANSWER_KEYWORD.sub("", found[0]).strip()
    try:
        return (json.loads(argument),)
    except json.JSONDecodeError:
        pass
    try:
        # Only literals: a name or expression here refers to values the model has, not ones we can see.
        return (ast.literal_eval(argument),)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


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
