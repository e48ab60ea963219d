"""Shaping what code printed or raised into text a model can read.

Shared by every executor: a bounded print buffer (head + tail, so a flood of output cannot eat memory), head+tail
truncation with a note saying how much was cut, syntax errors shown with their line and a caret, and exceptions
reduced to the lines of the agent's own code. Importing this module has no side effects.
"""

from __future__ import annotations

import _ast
import linecache
from types import TracebackType

TYPE_CHECKING = False  # collections.abc is slow to import and the sandbox worker ships this module
if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = [
    "AGENT_CODE_FILENAME",
    "OutputBuffer",
    "truncate_output",
    "format_syntax_error",
    "format_exception",
    "find_tool_rebinding",
    "describe_variables",
]

AGENT_CODE_FILENAME = "<agent-code>"
"""The file name agent code is compiled under, so its frames can be told apart from library frames."""

MAX_MESSAGE_CHARS = 2_000
"""An exception message longer than this is cut (head + tail) before the model sees it."""


def _cut_note(cut: int) -> str:
    return f"\n... [output truncated: {cut:,} characters cut from the middle] ...\n"


def truncate_output(text: str, limit: int) -> str:
    """Return `text` unchanged if it fits in `limit` characters, else its head and tail with a note between.

    The note says how many characters were cut. Head and tail get half of `limit` each.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return text[:head] + _cut_note(len(text) - head - tail) + (text[-tail:] if tail else "")


class OutputBuffer:
    """An append-only text buffer that keeps at most `limit` characters: the first half and the latest half.

    Memory stays bounded whatever is written; `getvalue()` gives the head, a note saying how much was dropped,
    and the tail. Not thread-safe by itself: each executor run owns one buffer.
    """

    __slots__ = ("limit", "_head", "_head_len", "_tail", "_tail_len", "_dropped")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self._dropped = 0

    def write(self, text: str) -> int:
        """Append `text`; return its length (the `io.TextIOBase.write` convention)."""
        n = len(text)
        head_room = self.limit // 2 - self._head_len
        if head_room > 0:
            part = text[:head_room]
            self._head.append(part)
            self._head_len += len(part)
            text = text[head_room:]
            if not text:
                return n
        tail_limit = self.limit - self.limit // 2
        if len(text) >= tail_limit:
            self._dropped += self._tail_len + len(text) - tail_limit
            self._tail = [text[len(text) - tail_limit :]] if tail_limit else []
            self._tail_len = tail_limit
            return n
        self._tail.append(text)
        self._tail_len += len(text)
        if self._tail_len > 2 * tail_limit:
            self._compact_tail(tail_limit)
        return n

    def _compact_tail(self, tail_limit: int) -> None:
        joined = "".join(self._tail)
        self._dropped += len(joined) - tail_limit
        self._tail = [joined[len(joined) - tail_limit :]]
        self._tail_len = tail_limit

    def flush(self) -> None:
        """Nothing to flush; present so the buffer can stand in for a text stream."""

    @property
    def total_written(self) -> int:
        """How many characters were written in all, kept or not."""
        return self._head_len + self._tail_len + self._dropped

    def getvalue(self) -> str:
        """The kept text: head, then a truncation note if anything was dropped, then the tail (at most `limit`)."""
        tail_limit = self.limit - self.limit // 2
        if self._tail_len > tail_limit:
            self._compact_tail(tail_limit)
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self._dropped:
            return head + tail
        return head + _cut_note(self._dropped) + tail


def format_syntax_error(error: SyntaxError, code: str | None = None) -> str:
    """Describe a syntax error for the model: line number, the offending line, and a caret under the problem."""
    lineno = error.lineno or 0
    line = error.text
    if line is None and code is not None and lineno > 0:
        lines = code.splitlines()
        line = lines[lineno - 1] if lineno <= len(lines) else None
    kind = type(error).__name__
    message = f"{kind} on line {lineno}: {error.msg}" if lineno else f"{kind}: {error.msg}"
    if not line:
        return message
    stripped = line.rstrip("\r\n")
    indent = len(stripped) - len(stripped.lstrip())
    shown = stripped.strip()
    text = f"{message}\n    {shown}"
    if error.offset and error.offset > 0:
        start = max(error.offset - 1 - indent, 0)
        end_offset = getattr(error, "end_offset", None)
        same_line = getattr(error, "end_lineno", lineno) in (None, lineno)
        width = end_offset - error.offset if end_offset and same_line and end_offset > error.offset else 1
        width = max(1, min(width, len(shown) - start)) if start < len(shown) else 1
        text += "\n    " + " " * min(start, len(shown)) + "^" * width
    return text


def _shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return truncate_output(text, limit)


def _agent_frames(tb: TracebackType | None, filename: str) -> list[tuple[int, str]]:
    frames: list[tuple[int, str]] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == filename:
            frames.append((tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def format_exception(
    error: BaseException,
    code: str,
    *,
    filename: str = AGENT_CODE_FILENAME,
    message: str | None = None,
) -> str:
    """Describe an exception raised by agent code: where in the agent's code it happened, then `Type: message`.

    Only frames of the agent's own code (compiled under `filename`) are shown; library and executor frames are
    left out. `message` replaces `str(error)` when the caller already rendered it (rendering may run user code,
    so an executor does it under its own limits). Long messages are cut head + tail.
    """
    lines = code.splitlines()
    frames = _agent_frames(error.__traceback__, filename)
    if message is None:
        try:
            message = str(error)
        except Exception as render_error:  # a user __str__ that raises must not hide the original error
            message = f"<str() of the exception failed: {type(render_error).__name__}>"
    kind = type(error).__qualname__
    summary = f"{kind}: {_shorten(message)}" if message else kind
    if not frames:
        return summary

    def source(lineno: int) -> str:
        if 0 < lineno <= len(lines):
            return lines[lineno - 1].strip()
        return linecache.getline(filename, lineno).strip()

    last_line, _ = frames[-1]
    header = f"Error on line {last_line}: {source(last_line)}"
    if len(frames) == 1:
        return f"{header}\n{summary}"
    trail = "\n".join(
        f"  line {lineno}, in {'<module>' if name == '<module>' else name}: {source(lineno)}"
        for lineno, name in frames[-8:]
    )
    return f"{header}\nTraceback (agent code, most recent call last):\n{trail}\n{summary}"


_NEW_SCOPES = (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef, _ast.Lambda)
_COMPREHENSIONS = (_ast.ListComp, _ast.SetComp, _ast.DictComp, _ast.GeneratorExp)


def _module_bindings(tree: _ast.Module) -> list[tuple[str, _ast.AST]]:
    """Names the step's code would bind (or delete) in the persistent namespace, with the node that does it.

    Only module scope counts: a parameter or local variable inside a function shadows nothing outside it.
    A `global` declaration inside a function does reach module scope, and a walrus inside a comprehension too.
    Uses `_ast`, not `ast`, so the sandbox worker (which ships this module) starts without importing `ast`.
    """
    found: list[tuple[str, _ast.AST]] = []
    stack: list[tuple[_ast.AST, bool]] = [(tree, True)]
    while stack:
        node, module_scope = stack.pop()
        if isinstance(node, _ast.Global):
            found.extend((name, node) for name in node.names)
        elif module_scope:
            if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef)):
                found.append((node.name, node))
            elif isinstance(node, _ast.Name) and not isinstance(node.ctx, _ast.Load):
                found.append((node.id, node))
            elif isinstance(node, _ast.alias):
                found.append(((node.asname or node.name).partition(".")[0], node))
            elif isinstance(node, _ast.ExceptHandler) and node.name:
                found.append((node.name, node))
            elif isinstance(node, (_ast.MatchAs, _ast.MatchStar)) and node.name:
                found.append((node.name, node))
            elif isinstance(node, _ast.MatchMapping) and node.rest:
                found.append((node.rest, node))
        elif isinstance(node, _ast.NamedExpr) and isinstance(node.target, _ast.Name):
            found.append((node.target.id, node))  # only reached inside a comprehension at module scope
        inner = module_scope and not isinstance(node, _NEW_SCOPES + _COMPREHENSIONS)
        if isinstance(node, _COMPREHENSIONS) and not module_scope:
            continue  # a comprehension nested in a function: its walrus binds that function's locals
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, _ast.AST):
                stack.append((value, inner))
            elif isinstance(value, list):
                stack.extend((item, inner) for item in value if isinstance(item, _ast.AST))
    return found


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _may_bind(code: str, name: str) -> bool:
    """False when every occurrence of `name` in `code` is a call `name(` (not `def name(` / `class name(`).

    Any binding leaves the name not followed by `(` (`name =`, `as name`, `for name in`, `del name`, ...),
    except `def`/`class`, checked apart; so False means the step cannot bind it and the AST need not be walked.
    """
    start = code.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or not _is_name_char(code[start - 1])) and (
            end == len(code) or not _is_name_char(code[end])
        ):
            after = end
            while after < len(code) and code[after] in " \t":
                after += 1
            if after == len(code) or code[after] != "(":
                return True
            before = start
            while before > 0 and code[before - 1] in " \t":
                before -= 1
            if code.endswith(("def", "class"), 0, before):
                return True
        start = code.find(name, end)
    return False


def find_tool_rebinding(tree: _ast.Module, tool_names: Collection[str], code: str) -> str | None:
    """The model-facing refusal if the step's code would rebind a tool or `final_answer`, else None.

    A small model often pastes the prompt's tool stubs (`def final_answer(answer): print(answer)`); run as is,
    the stub would silently replace the real tool for this and every later step, and the run could never end.
    The step is refused before any of it runs, so nothing half-done is left behind.
    """
    if not any(_may_bind(code, name) for name in tool_names):
        return None  # the usual step only calls tools: skip the walk, which costs about as much as compiling
    for name, node in _module_bindings(tree):
        if name not in tool_names:
            continue
        lineno = getattr(node, "lineno", 0)
        lines = code.splitlines()
        where = f" (line {lineno}: {lines[lineno - 1].strip()})" if 0 < lineno <= len(lines) else ""
        return (
            f"Refused{where}: `{name}` is a tool provided to you; do not define, assign, import or delete it "
            f"- call it, e.g. `{name}(...)`. Nothing in this step was run; send the code again without "
            f"redefining `{name}`."
        )
    return None


_SIZED = (list, tuple, dict, set, frozenset, str, bytes, bytearray)
_MAX_LISTED = 20


def describe_variables(namespace: dict[str, object], hidden: Collection[str] = ()) -> str:
    """One line naming the variables agent code has defined, with their types and sizes, or "" if none.

    Shown after a failing step so the model knows what it can reuse instead of fetching or typing it again.
    Names starting with `_`, modules, and the `hidden` names (tools, `final_answer`) are left out. Only the
    exact built-in containers get a size: `len()` of an agent-defined class would run agent code here.
    """
    parts: list[str] = []
    count = 0
    for name, value in namespace.items():
        if type(name) is not str or name.startswith("_") or name in hidden:
            continue
        kind = type(value)
        if kind.__name__ == "module":
            continue
        count += 1
        if count > _MAX_LISTED:
            continue
        # identity checks only: `==` on an agent-defined metaclass would run agent code
        if any(kind is sized for sized in _SIZED):
            size = len(value)  # type: ignore[arg-type]
            unit = "keys" if kind is dict else "characters" if kind is str else "items"
            parts.append(f"{name} ({kind.__name__}, {size} {unit})")
        elif kind is float or kind is bool or value is None or (kind is int and value.bit_length() <= 64):  # type: ignore[attr-defined]
            parts.append(f"{name} = {value!r}"[:60])
        else:
            parts.append(f"{name} ({kind.__name__})")
    if not parts:
        return ""
    more = f", and {count - _MAX_LISTED} more" if count > _MAX_LISTED else ""
    return "Variables defined now: " + ", ".join(parts) + more
