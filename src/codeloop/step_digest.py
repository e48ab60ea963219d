"""One-line digests of a CodeAgent's old steps, for context compaction (`codeloop.compaction`).

A step that leaves the window of recent steps keeps what the model needs to go on without its code and output:
the first sentence of its thought (what it meant to do), the calls it made (tools and its own functions, with
short arguments), the names it set, and how it ended (a short output in full, the size of a long one, or the
error's one-line reason). The variables themselves are still in the namespace, so anything can be printed again.
"""

from __future__ import annotations

import ast
import builtins
import json
import re

from .memory import ActionStep

__all__ = ["digest_code_step", "thought_of"]

_SHORT_OUTPUT = 100  # characters of output shown in full in a digest
_MAX_THOUGHT = 80
_MAX_CALL = 48  # a call longer than this is shown as name(...)
_MAX_ITEMS = 5  # calls or names listed per digest
_BUILTINS = frozenset(dir(builtins))
_CODE_START = re.compile(r"```|<code>")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def thought_of(step: ActionStep) -> str:
    """The step's thought, without its code: the reply's text before the code block (or a structured reply's
    `thought` field), with a leading "Thought:" dropped."""
    text = (step.model_output or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            thought = data.get("thought")
            return thought.strip() if isinstance(thought, str) else ""
    found = _CODE_START.search(text)
    thought = (text[: found.start()] if found else text).strip()
    if thought.lower().startswith("thought:"):
        thought = thought[len("thought:") :].strip()
    return thought


def digest_code_step(step: ActionStep, number: int) -> str:
    """`step` as one line: `N. <first sentence of the thought> Called f(x), g(...); set a, b; <outcome>.`"""
    parts = [f"{number}."]
    calls, names = _calls_and_names(step.code_action or "")
    thought = _first_sentence(thought_of(step))
    if thought and not calls and not names:
        parts.append(thought)
    facts = []
    if calls:
        facts.append("called " + _listed(calls))
    if names and not step.error:  # a failed step may have stopped before setting them
        facts.append("set " + _listed(names))
    outcome = _outcome(step)
    if outcome:
        facts.append(outcome)
    if facts:
        text = "; ".join(facts)
        parts.append(text[0].upper() + text[1:] + ("" if text.endswith(".") else "."))
    return " ".join(parts)


def _first_sentence(text: str) -> str:
    line = text.strip().split("\n", 1)[0].strip()
    end = _SENTENCE_END.search(line)
    if end:
        line = line[: end.start()]
    if len(line) > _MAX_THOUGHT:
        line = line[: _MAX_THOUGHT - 1].rsplit(" ", 1)[0] + "…"
    return line


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_ITEMS])
    return shown + (f" and {len(items) - _MAX_ITEMS} more" if len(items) > _MAX_ITEMS else "")


def _calls_and_names(code: str) -> tuple[list[str], list[str]]:
    """The calls of non-builtin functions (short ones with their arguments) and the module-level names the code
    binds, each in the order they appear. Code that does not parse gives neither."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return [], []
    collector = _Collector()
    collector.visit(tree)
    return list(dict.fromkeys(collector.calls)), list(dict.fromkeys(collector.names))


class _Collector(ast.NodeVisitor):
    """Walks agent code in source order, noting calls and the names bound at module level."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.names: list[str] = []
        self._depth = (
            0  # inside a function, class, lambda or comprehension: its names are not the namespace's
        )
        self._deferred = 0  # inside a function or lambda body: its calls run later, if ever

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id not in _BUILTINS and not self._deferred:
            text = ast.unparse(node)
            self.calls.append(text if len(text) <= _MAX_CALL else f"{node.func.id}(...)")
        self.generic_visit(node)

    def _bind(self, target: ast.expr) -> None:
        if self._depth:
            return
        if isinstance(target, ast.Name):
            self.names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind(element)
        elif isinstance(target, ast.Starred):
            self._bind(target.value)
        elif isinstance(target, ast.Subscript | ast.Attribute):
            text = ast.unparse(target)  # `credits["C001"] = ...` changes `credits`: worth showing which key
            if len(text) <= _MAX_CALL:
                self.names.append(text)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._bind(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def _scope(self, node: ast.AST, name: str | None, deferred: bool = False) -> None:
        if name is not None and not self._depth:
            self.names.append(name)
        self._depth += 1
        self._deferred += deferred
        self.generic_visit(node)
        self._deferred -= deferred
        self._depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node, node.name, deferred=True)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scope(node, node.name, deferred=True)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node, node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node, None, deferred=True)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._scope(node, None)  # a comprehension's loop variable is its own

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._scope(node, None)

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._scope(node, None)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._scope(node, None)


def _outcome(step: ActionStep) -> str:
    """How the step ended, briefly: its error's reason, its output when short, else the output's size."""
    if step.error:
        return "failed: " + _error_reason(step.error)
    output = (step.observations or "").strip()
    if not output:
        return ""
    if len(output) <= _SHORT_OUTPUT and "\n" not in output:
        return f"printed {output}"
    return f"printed {len(output):,} characters"


def _error_reason(error: str) -> str:
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    reason = next((line for line in lines if _EXCEPTION_LINE.match(line)), lines[0] if lines else "error")
    return reason if len(reason) <= _SHORT_OUTPUT else reason[: _SHORT_OUTPUT - 1] + "…"
