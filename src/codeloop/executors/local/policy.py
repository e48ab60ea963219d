"""Static rules every executor applies to agent code before running it.

`check_code(code, authorized_imports)` parses the code and refuses, with a message the model can act on:
imports outside the allow-list, names of dangerous builtins (`eval`, `exec`, `open`, `__import__`, `globals`, ...),
dunder names and dunder attributes other than a list of harmless ones, and attributes that expose interpreter
internals (frames, code objects, generator/coroutine/traceback internals, `mro`). It returns the parsed module so
an executor can instrument and compile it without parsing twice.

These rules are a first line only: attribute names computed at run time (`getattr(x, name)`), format strings and
module attributes need run-time guards as well (`LocalExecutor` has them), or a process boundary (`SandboxExecutor`).
Importing this module has no side effects.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable

from ...errors import ExecutionError
from ..output import AGENT_CODE_FILENAME, format_syntax_error

__all__ = [
    "DEFAULT_AUTHORIZED_IMPORTS",
    "FORBIDDEN_BUILTIN_NAMES",
    "INTERNAL_ATTRIBUTES",
    "SINK_ATTRIBUTES",
    "HOST_FILE_ATTRIBUTES",
    "SAFE_DUNDER_ATTRIBUTES",
    "STORABLE_DUNDER_ATTRIBUTES",
    "ALLOWED_DUNDER_NAMES",
    "normalize_authorized_imports",
    "is_import_authorized",
    "import_error_message",
    "attribute_refusal",
    "is_dunder",
    "parse_code",
    "check_code",
]

DEFAULT_AUTHORIZED_IMPORTS: tuple[str, ...] = (
    # smolagents' base list, so prompts written for it keep working ...
    "collections", "datetime", "itertools", "math", "queue", "random", "re", "stat", "statistics", "time",
    "unicodedata",
    # ... plus pure-computation stdlib modules that ordinary agent code reaches for.
    "collections.abc", "json", "functools", "operator", "enum", "dataclasses", "fractions", "decimal", "heapq",
    "bisect", "copy", "string", "textwrap", "typing",
)  # fmt: skip
"""Modules importable without configuration: computation only, no files, processes or network."""

FORBIDDEN_BUILTIN_NAMES: frozenset[str] = frozenset(
    {
        "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "input", "breakpoint",
        "help", "exit", "quit", "copyright", "credits", "license",
    }
)  # fmt: skip
"""Builtins agent code may not use: they run arbitrary code, touch files or the terminal, or expose namespaces."""

INTERNAL_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # frames
        "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace", "f_trace_lines", "f_trace_opcodes",
        "f_lasti",
        # generators, coroutines, async generators
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin", "ag_frame",
        "ag_code", "ag_await",
        # tracebacks
        "tb_frame", "tb_next", "tb_lasti",
        # code objects
        "co_code", "co_consts", "co_names", "co_varnames", "co_cellvars", "co_freevars", "co_filename",
        # the class hierarchy walk that leads from `object` to every loaded class
        "mro",
    }
)  # fmt: skip
"""Non-dunder attributes that lead to frames, code or the class hierarchy: never accessible from agent code."""

SINK_ATTRIBUTES: frozenset[str] = frozenset(
    {
        # event-loop methods that start processes, threads or connections (asyncio loops are real objects)
        "run_in_executor", "set_default_executor", "subprocess_exec", "subprocess_shell",
        "create_subprocess_exec", "create_subprocess_shell", "create_connection", "create_server",
        "create_unix_connection", "create_unix_server", "create_datagram_endpoint", "sock_connect",
        "connect_accepted_socket", "open_connection", "open_unix_connection", "start_server", "start_unix_server",
    }
)  # fmt: skip
"""Attributes that start processes, threads or connections from objects an allowed module hands out."""

HOST_FILE_ATTRIBUTES: frozenset[str] = frozenset({"detach", "setStream"})
"""Methods that hand out the host's open files (a logging handler's stream, the buffer under a text stream)."""

_OPERATOR_DUNDERS = {
    f"__{name}__"
    for base in (
        "add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow", "lshift", "rshift", "and",
        "xor", "or",
    )
    for name in (base, "r" + base, "i" + base)
}  # fmt: skip

SAFE_DUNDER_ATTRIBUTES: frozenset[str] = frozenset(
    _OPERATOR_DUNDERS
    | {
        "__init__", "__new__", "__name__", "__qualname__", "__doc__", "__module__", "__class__", "__dict__",
        "__annotations__", "__wrapped__", "__func__", "__cause__", "__context__", "__suppress_context__",
        "__traceback__", "__notes__", "__slots__", "__match_args__", "__dataclass_fields__", "__version__",
        "__all__", "__members__", "__setattr__", "__delattr__", "__getattr__", "__getattribute__",
        "__post_init__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__await__", "__aiter__",
        "__anext__", "__repr__", "__str__", "__format__", "__bytes__", "__hash__", "__bool__", "__len__",
        "__length_hint__", "__iter__", "__next__", "__reversed__", "__contains__", "__getitem__",
        "__setitem__", "__delitem__", "__missing__", "__call__", "__eq__", "__ne__", "__lt__", "__le__",
        "__gt__", "__ge__", "__index__", "__int__", "__float__", "__complex__", "__round__", "__trunc__",
        "__floor__", "__ceil__", "__neg__", "__pos__", "__abs__", "__invert__", "__get__", "__set__",
        "__delete__", "__set_name__", "__init_subclass__", "__class_getitem__", "__instancecheck__",
        "__subclasscheck__", "__copy__", "__deepcopy__", "__sizeof__", "__dir__",
    }
)  # fmt: skip
"""Dunder attributes agent code may read. `__dict__` and the four attribute hooks are further guarded at run time
by executors that can (LocalExecutor hands out filtered or name-checking versions)."""

STORABLE_DUNDER_ATTRIBUTES: frozenset[str] = frozenset(
    {"__doc__", "__name__", "__qualname__", "__module__", "__wrapped__"}
)
"""Dunder attributes agent code may assign or delete (what `functools.wraps`-style decorators set)."""

ALLOWED_DUNDER_NAMES: frozenset[str] = frozenset(
    (SAFE_DUNDER_ATTRIBUTES - {"__dict__"}) | {"__debug__", "__class__", "__name__"}
)
"""Dunder *names* (not attributes) agent code may use: `if __name__ == "__main__":`, and dunder methods defined,
aliased (`__radd__ = __add__`) or declared (`__slots__`, `__match_args__`) in class bodies."""


def is_dunder(name: str) -> bool:
    """True for `__name__`-shaped identifiers."""
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


# --- imports ---------------------------------------------------------------------------------------------------------


def normalize_authorized_imports(
    additional: Iterable[str] = (), *, base: Iterable[str] = DEFAULT_AUTHORIZED_IMPORTS
) -> frozenset[str]:
    """The effective allow-list: `base` plus `additional`, validated.

    Entries are dotted module names, `"pkg.*"` (the package and all its submodules) or `"*"` (anything).
    """
    if isinstance(additional, str):
        raise TypeError(
            f"additional_authorized_imports must be a list of module names, not the string {additional!r}; "
            f"write [{additional!r}]"
        )
    names: set[str] = set()
    for entry in (*base, *additional):
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"authorized imports must be non-empty module names, got {entry!r}")
        entry = entry.strip()
        if entry != "*":
            core = entry[:-2] if entry.endswith(".*") else entry
            if not all(part.isidentifier() for part in core.split(".")):
                raise ValueError(
                    f"{entry!r} is not a module name; use dotted names like 'numpy', 'pkg.sub', 'pkg.*' or '*'"
                )
        names.add(entry)
    return frozenset(names)


def is_import_authorized(module: str, authorized: Collection[str]) -> bool:
    """True if `module` may be imported under `authorized` (exact names, `"pkg.*"` wildcards, or `"*"`)."""
    if "*" in authorized or module in authorized or module == "__future__":
        return True
    parts = module.split(".")
    return any(".".join(parts[:i]) + ".*" in authorized for i in range(1, len(parts) + 1))


def import_error_message(module: str) -> str:
    """What the model sees when it imports a module that is not authorized."""
    top = module.split(".")[0]
    hint = f"additional_authorized_imports=[{module!r}]"
    if top != module:
        hint += f" (or [{top + '.*'!r}] for the whole package)"
    return (
        f"Import of {module!r} is not allowed. Use only the authorized modules, or have the agent's developer "
        f"authorize it with {hint}."
    )


# --- attributes ------------------------------------------------------------------------------------------------------


def attribute_refusal(name: str, *, store: bool = False) -> str | None:
    """Why agent code may not read (or, with `store`, assign/delete) attribute `name`; None if it may."""
    if name in INTERNAL_ATTRIBUTES:
        return f"attribute {name!r} exposes interpreter internals and is not accessible"
    if name in SINK_ATTRIBUTES:
        return f"attribute {name!r} starts processes, threads or connections and is not accessible"
    if name in HOST_FILE_ATTRIBUTES:
        return f"attribute {name!r} hands out the host's open files and is not accessible"
    if is_dunder(name):
        allowed = STORABLE_DUNDER_ATTRIBUTES if store else SAFE_DUNDER_ATTRIBUTES
        if name not in allowed:
            verb = "assigning" if store else "accessing"
            return f"{verb} the dunder attribute {name!r} is not allowed"
    return None


# --- the check ---------------------------------------------------------------------------------------------------------


def parse_code(code: str) -> ast.Module:
    """Parse agent code, turning every parse failure into an `ExecutionError` with line and caret."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    try:
        return ast.parse(code, filename=AGENT_CODE_FILENAME, mode="exec")
    except SyntaxError as err:
        raise ExecutionError(format_syntax_error(err, code)) from None
    except (ValueError, RecursionError, MemoryError) as err:
        # null bytes, or nesting too deep for the parser
        raise ExecutionError(f"The code could not be parsed: {type(err).__name__}: {err}") from None


def _bound_names(tree: ast.Module) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


class _Violation(Exception):
    def __init__(self, node: ast.AST, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def _check_name(node: ast.AST, name: str, bound: Collection[str]) -> None:
    if is_dunder(name):
        if name not in ALLOWED_DUNDER_NAMES:
            raise _Violation(node, f"the name {name!r} is not allowed")
    elif name in FORBIDDEN_BUILTIN_NAMES and name not in bound:
        raise _Violation(node, f"{name!r} is not available: it is forbidden in agent code")


def _check_import(node: ast.Import | ast.ImportFrom, authorized: Collection[str]) -> None:
    if isinstance(node, ast.ImportFrom):
        if node.level:
            raise _Violation(node, "relative imports are not allowed")
        modules = [node.module or ""]
        for alias in node.names:
            if is_dunder(alias.name) or (alias.asname and is_dunder(alias.asname)):
                raise _Violation(node, f"importing the name {alias.name!r} is not allowed")
    else:
        modules = [alias.name for alias in node.names]
    for module in modules:
        if not is_import_authorized(module, authorized):
            raise _Violation(node, import_error_message(module))


def _check_node(node: ast.AST, authorized: Collection[str], bound: Collection[str]) -> None:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        _check_import(node, authorized)
    elif isinstance(node, ast.Name):
        _check_name(node, node.id, bound)
    elif isinstance(node, ast.Attribute):
        reason = attribute_refusal(node.attr, store=not isinstance(node.ctx, ast.Load))
        if reason:
            raise _Violation(node, reason)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if is_dunder(node.name) and node.name not in ALLOWED_DUNDER_NAMES and node.name != "__del__":
            raise _Violation(node, f"defining {node.name!r} is not allowed")
    elif isinstance(node, ast.arg):
        if is_dunder(node.arg):
            raise _Violation(node, f"the parameter name {node.arg!r} is not allowed")
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        for name in node.names:
            _check_name(node, name, bound)
    elif isinstance(node, ast.MatchClass):
        for attr in node.kwd_attrs:
            reason = attribute_refusal(attr)
            if reason:
                raise _Violation(node, f"pattern keyword: {reason}")
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        _check_name(node, node.name, bound)
    elif isinstance(node, ast.MatchMapping) and node.rest:
        _check_name(node, node.rest, bound)
    elif isinstance(node, ast.ExceptHandler) and node.name:
        _check_name(node, node.name, bound)
    elif isinstance(node, ast.alias) and node.asname:
        _check_name(node, node.asname, bound)


def check_code(
    code: str,
    authorized_imports: Iterable[str] = DEFAULT_AUTHORIZED_IMPORTS,
    *,
    defined_names: Collection[str] = (),
) -> ast.Module:
    """Parse `code` and apply the static rules; return the module AST or raise `ExecutionError`.

    `authorized_imports` is the complete allow-list (see `normalize_authorized_imports`); `defined_names` are
    names already bound in the executor's namespace, so a user function called e.g. `compile` defined in an
    earlier step stays callable. The error message names the line, the offending code and what to do instead.
    """
    tree = parse_code(code)
    authorized = (
        authorized_imports if isinstance(authorized_imports, (set, frozenset)) else set(authorized_imports)
    )
    bound = _bound_names(tree) | set(defined_names)
    try:
        for node in ast.walk(tree):
            _check_node(node, authorized, bound)
    except _Violation as violation:
        lineno = getattr(violation.node, "lineno", 0)
        lines = code.splitlines()
        where = f" on line {lineno}: {lines[lineno - 1].strip()}" if 0 < lineno <= len(lines) else ""
        raise ExecutionError(
            f"Forbidden code{where}\n{violation.message[0].upper()}{violation.message[1:]}"
        ) from None
    except RecursionError:
        raise ExecutionError("The code is nested too deeply to be checked; simplify it.") from None
    return tree
