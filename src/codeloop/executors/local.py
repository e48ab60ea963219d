"""LocalExecutor: agent code as real compiled CPython in this process, behind an AST policy.

Phase-1 version: static policy, curated builtins, per-executor print capture, final_answer, last-expression value.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from ..errors import ExecutionError
from .base import ExecutionResult
from .output import AGENT_CODE_FILENAME, OutputBuffer, format_exception
from .policy import (
    FORBIDDEN_BUILTIN_NAMES,
    check_code,
    import_error_message,
    is_import_authorized,
    normalize_authorized_imports,
)

__all__ = ["LocalExecutor"]

_LAST_VALUE = "__codeloop_last_value__"


class _FinalAnswerSignal(BaseException):
    """Raised by `final_answer`; a BaseException so `except Exception:` in agent code does not stop it."""


class LocalExecutor:
    """Runs agent code in-process as compiled CPython, with a persistent namespace."""

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        max_print_outputs_length: int = 50_000,
        timeout: float | None = None,
    ) -> None:
        self.authorized_imports = normalize_authorized_imports(additional_authorized_imports)
        self.max_print_outputs_length = max_print_outputs_length
        self.timeout = timeout
        self._buffer = OutputBuffer(max_print_outputs_length)
        self._final: list[Any] = []
        self._builtins = self._make_builtins()
        self._namespace: dict[str, Any] = {"__builtins__": self._builtins, "__name__": "__main__"}
        self._tools: dict[str, Any] = {}
        self._closed = False

    def _make_builtins(self) -> dict[str, Any]:
        table = {k: v for k, v in vars(builtins).items() if k not in FORBIDDEN_BUILTIN_NAMES}
        table.pop("__import__", None)
        authorized = self.authorized_imports

        def guarded_import(
            name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
        ) -> Any:
            if level or not is_import_authorized(name, authorized):
                raise ImportError(import_error_message(name))
            module = importlib.import_module(name)
            return module if fromlist else importlib.import_module(name.split(".")[0])

        buffer = self._buffer

        def print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:  # noqa: A001
            if file is not None:
                builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
                return
            buffer.write((" " if sep is None else sep).join(map(str, args)) + ("\n" if end is None else end))

        final = self._final

        def final_answer(answer: Any = None) -> None:
            final.clear()
            final.append(answer)
            raise _FinalAnswerSignal

        table["__import__"] = guarded_import
        table["print"] = print
        table["final_answer"] = final_answer
        return table

    def send_tools(self, tools: dict[str, Any]) -> None:
        """Make these callables available to the code under their names; `final_answer` stays available."""
        for name, tool in tools.items():
            if name == "final_answer":
                continue
            if not callable(tool):
                raise TypeError(f"tool {name!r} is not callable")
            self._namespace[name] = tool
        self._tools.update(tools)

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Put these values into the code's namespace."""
        self._namespace.update(variables)

    def run(self, code: str) -> ExecutionResult:
        """Run `code` in the persistent namespace."""
        if self._closed:
            raise ExecutionError("This executor is closed; create a new one.")
        tree = check_code(code, self.authorized_imports, defined_names=self._namespace.keys())
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body[-1]
            assign = ast.Assign(targets=[ast.Name(_LAST_VALUE, ast.Store())], value=last.value)
            tree.body[-1] = ast.copy_location(assign, last)
            ast.fix_missing_locations(tree)
        compiled = compile(tree, AGENT_CODE_FILENAME, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        self._buffer.__init__(self.max_print_outputs_length)  # type: ignore[misc]
        self._final.clear()
        try:
            outcome = eval(compiled, self._namespace)
            if outcome is not None and compiled.co_flags & 0x80:  # CO_COROUTINE
                import asyncio

                asyncio.new_event_loop().run_until_complete(outcome)
        except _FinalAnswerSignal:
            pass
        except BaseException as err:  # noqa: BLE001
            if not self._final:
                raise ExecutionError(format_exception(err, code), logs=self._buffer.getvalue()) from None
        logs = self._buffer.getvalue()
        value = self._namespace.pop(_LAST_VALUE, None)
        if self._final:
            return ExecutionResult(self._final[0], logs, True)
        return ExecutionResult(value, logs, False)

    def close(self) -> None:
        """Drop the namespace. Safe to call twice."""
        self._closed = True
        self._namespace.clear()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_: Callable[..., Any] = LocalExecutor
