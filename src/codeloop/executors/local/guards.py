"""Run-time guards for LocalExecutor: step control, vetted attribute access, checked format strings, and the AST
instrumentation that routes agent code through them.

The static policy (`policy.py`) refuses what is visible in the source. What is only known at run time goes through
the functions here, which agent code reaches under reserved dunder names that it cannot spell itself:

- every user-defined function, lambda, `except` handler and `finally` block starts by checking a per-executor flag,
  so agent code stops when the step is over (time limit, final answer) — including code the host would otherwise
  run later, such as a `__del__`, a `__repr__` or a monkey-patched method;
- attribute names that start with an underscore, dunders, and the names in `VETTED_ATTRIBUTES` are read through
  `vetted_getattr`, which refuses interpreter internals and never hands out a real module (only the executor's
  restricted proxy of an authorized one) or anything belonging to a dangerous module;
- `str.format` / `format_map` refuse fields that reach attributes such as `{0.__class__}`;
- class patterns in `match` statements are checked for `__match_args__` that would read forbidden attributes.

Attribute reads with ordinary public names compile to plain CPython attribute access: that is what keeps agent
code at native speed.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # the C helpers behind str.format's field parsing
import ast
import builtins
import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import (
    BuiltinFunctionType,
    CodeType,
    FrameType,
    FunctionType,
    MappingProxyType,
    MethodType,
    ModuleType,
)
from typing import Any, NoReturn

from .policy import FORBIDDEN_BUILTIN_NAMES, SAFE_DUNDER_ATTRIBUTES, attribute_refusal, is_dunder

__all__ = [
    "GuardedSuper",
    "SEALED_CLASSES",
    "OK_FLAG",
    "HALT",
    "UNRENDERED",
    "LAST_VALUE",
    "BIG_INT_OP",
    "DANGEROUS_MODULES",
    "VETTED_ATTRIBUTES",
    "FinalAnswerSignal",
    "StepInterrupted",
    "OutsideStepError",
    "ForbiddenAttributeError",
    "StepControl",
    "AttributeGuard",
    "owner_module",
    "agent_code_running",
    "AgentThreadMark",
    "instrument",
    "big_int_guard",
]

OK_FLAG = "__codeloop_ok__"
HALT = "__codeloop_halt__"
UNRENDERED = "__codeloop_unrendered__"
LAST_VALUE = "__codeloop_last__"
BIG_INT_OP = "__codeloop_bigop__"
_VET = "__codeloop_vet__"
_PRIVATE = "__codeloop_private__"
_FMT = "__codeloop_fmt__"
_MATCH = "__codeloop_match__"

DANGEROUS_MODULES: frozenset[str] = frozenset(
    {
        "os", "posix", "nt", "posixpath", "ntpath", "sys", "subprocess", "_posixsubprocess", "io",
        "_io", "socket", "_socket", "importlib", "_imp", "_frozen_importlib", "_frozen_importlib_external",
        "ctypes", "_ctypes", "shutil", "pathlib", "pickle", "_pickle", "marshal", "signal", "_signal", "pty",
        "multiprocessing", "_multiprocessing", "threading", "_thread", "code", "codeop", "pdb", "bdb", "inspect",
        "gc", "resource", "runpy", "pkgutil", "zipimport", "mmap", "fcntl", "select", "selectors", "tempfile",
        "glob", "fileinput", "webbrowser", "urllib", "http", "ftplib", "smtplib", "ssl", "_ssl", "sysconfig",
        "site", "_sitebuiltins", "types", "codecs", "_codecs", "linecache", "tokenize", "faulthandler",
        "tracemalloc", "_tracemalloc", "atexit", "copyreg", "_weakref", "weakref", "concurrent", "asyncio",
    }
)  # fmt: skip
"""Modules whose functions, classes and instances agent code never gets through attribute access (LocalExecutor
hands out an authorized module only as a restricted proxy, and builds its own safe versions where needed)."""

VETTED_ATTRIBUTES: frozenset[str] = frozenset(
    {"obj", "format", "format_map", "stream", "buffer", "raw", "fp", "fileobj"}
)
"""Public attribute names that still go through the run-time guard: `AttributeError.obj` can carry an object the
code never had; `format`/`format_map` of strings must check their fields; the stream-like names lead from a host
object (a logging handler, say) to a real file object, whose class opens any path."""

_INTERNAL_TYPES = (FrameType, CodeType)
_PER_OBJECT_OWNER_TYPES = (type, FunctionType, BuiltinFunctionType, MethodType)
_FORBIDDEN_BUILTIN_OBJECTS = frozenset(
    id(getattr(builtins, name)) for name in FORBIDDEN_BUILTIN_NAMES if hasattr(builtins, name)
)
_HOOKS = frozenset({"__getattribute__", "__getattr__", "__setattr__", "__delattr__"})
_NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})
_PLAIN_DUNDERS = SAFE_DUNDER_ATTRIBUTES - _HOOKS - {"__dict__"}


class FinalAnswerSignal(BaseException):
    """Raised by `final_answer`; a BaseException so `except Exception:` in agent code cannot swallow it."""


class StepInterrupted(BaseException):
    """Injected into agent code when its step must stop (time limit, cancellation)."""


class OutsideStepError(RuntimeError):
    """Agent code was called when no step of its executor is running (e.g. the host rendering a result)."""


class ForbiddenAttributeError(AttributeError):
    """An attribute agent code may not read, or whose value it may not hold."""


_AGENT_THREAD = threading.local()


def agent_code_running() -> bool:
    """True on a thread that is running agent code of a LocalExecutor step right now (not a tool it called)."""
    return getattr(_AGENT_THREAD, "active", False)


class AgentThreadMark:
    """Marks the current thread as running agent code (or, with `active=False`, host code) until `restore`."""

    __slots__ = ("saved",)

    def __init__(self, active: bool) -> None:
        self.saved = getattr(_AGENT_THREAD, "active", False)
        _AGENT_THREAD.active = active

    def restore(self) -> None:
        """Put back what the thread was running before."""
        _AGENT_THREAD.active = self.saved


class StepControl:
    """Whether agent code of one executor may run right now, and why not.

    The flag lives in the executor's builtins dict under `OK_FLAG` so instrumented code can read it as a global
    at the cost of one dictionary load.
    """

    __slots__ = (
        "flags",
        "reason",
        "final",
        "host_calls",
        "lock",
        "host_hooks",
        "paused",
        "_host_total",
        "_host_started",
    )

    def __init__(self, flags: dict[str, Any]) -> None:
        self.flags = flags
        self.reason: str | None = "outside"
        self.final: list[Any] = []
        self.host_calls = 0
        self.lock = threading.Lock()
        self.host_hooks: tuple[Callable[[], None], Callable[[], None]] | None = None
        """Called when the first host call starts and when the last one ends (the main-thread timer pauses)."""
        self.paused: BaseException | None = None
        """The signal a tool raised to pause the step (`codeloop.approval.ApprovalRequired`), once one did."""
        self._host_total = 0.0
        self._host_started = 0.0
        flags[OK_FLAG] = False
        flags[HALT] = self.halt

    def allow(self) -> None:
        """Open a step: agent code may run until `stop`."""
        self.final.clear()
        self.paused = None
        with self.lock:
            self._host_total = 0.0
        self.reason = None
        self.flags[OK_FLAG] = True

    def end(self) -> None:
        """The step is over: agent code called from now on (by the host) raises OutsideStepError."""
        self.flags[OK_FLAG] = False
        self.reason = "outside"

    def resume(self) -> None:
        """Let agent code run again after a final answer, so its result can be rendered within the step."""
        self.reason = None
        self.flags[OK_FLAG] = True

    def stop(self, reason: str) -> None:
        """Close the step: every check in agent code now raises (the first reason given wins)."""
        if self.reason is None:
            self.reason = reason
        self.flags[OK_FLAG] = False

    @property
    def running(self) -> bool:
        """True while a step is open and not stopped."""
        return bool(self.flags[OK_FLAG])

    def check(self) -> None:
        """Raise if agent code may not run now."""
        if not self.flags[OK_FLAG]:
            self.halt()

    def halt(self) -> NoReturn:
        """Raise the exception that matches why agent code must stop."""
        reason = self.reason
        if reason == "final":
            raise FinalAnswerSignal
        if reason in ("timeout", "cancelled", "memory", "paused"):
            raise StepInterrupted
        raise OutsideStepError(
            "agent code cannot run outside a step of its executor (e.g. a __repr__, __del__ or callback invoked "
            "later by the host)"
        )

    def host_call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call host code (a tool) from agent code: not interrupted by the time limit while it runs."""
        self.check()
        with self.lock:
            first = self.host_calls == 0
            if first:
                self._host_started = time.monotonic()
            self.host_calls += 1
        hooks = self.host_hooks
        if first and hooks is not None:
            hooks[0]()
        mark = AgentThreadMark(False)
        try:
            return function(*args, **kwargs)
        finally:
            mark.restore()
            # a step stopped while the tool ran is honoured at the next check in agent code
            with self.lock:
                self.host_calls -= 1
                last = self.host_calls == 0
                if last:
                    self._host_total += time.monotonic() - self._host_started
            if last and hooks is not None:
                hooks[1]()

    def pause(self, signal: BaseException) -> None:
        """A tool asked to pause the step: stop it at once; every later check (and tool call) raises."""
        if self.paused is None:
            self.paused = signal
        self.stop("paused")

    def host_seconds_unlocked(self) -> float:
        """`host_seconds` without taking the lock: for a signal handler that may interrupt its holder."""
        ongoing = time.monotonic() - self._host_started if self.host_calls else 0.0
        return self._host_total + ongoing

    def host_seconds(self) -> float:
        """Seconds the current step has spent inside host calls (tools), which its time limit does not count."""
        with self.lock:
            ongoing = time.monotonic() - self._host_started if self.host_calls else 0.0
            return self._host_total + ongoing


# right operands small enough that `x << k` / `x ** k` stay compiled to the plain operator
_SMALL_SHIFT = 1 << 12
_SMALL_EXPONENT = 64


def big_int_guard(limit_bytes: int | None) -> tuple[Callable[[Any, Any, bool], Any], Callable[..., Any]]:
    """`(checked_op, pow)` for agent code: integer `<<` / `**` (`is_shift` says which) and `pow` that raise
    MemoryError, before allocating, when their result alone would take more than `limit_bytes` (None: no check).

    One such operation is a single native call that nothing can interrupt once it runs (`1 << 10**11` zeroes
    12.5 GB); checking the operands first is what keeps it from happening.
    """
    limit_bits = None if limit_bytes is None else limit_bytes * 8
    real_pow = builtins.pow

    def refuse(bits: int) -> NoReturn:
        assert limit_bytes is not None
        raise MemoryError(
            f"the result would take about {bits // 8 // 2**20:,} MiB, more than the step's memory limit of "
            f"{limit_bytes // 2**20:,} MiB"
        )

    def checked_op(left: Any, right: Any, is_shift: bool) -> Any:
        if limit_bits is not None and type(left) in (int, bool) and type(right) in (int, bool) and left:
            if is_shift:
                if right > 0 and left.bit_length() + right > limit_bits:
                    refuse(left.bit_length() + right)
            elif right > 1 and (bits := (abs(left).bit_length() - 1) * right) > limit_bits:
                refuse(bits)
        return left << right if is_shift else left**right

    def pow(base: Any, exp: Any, mod: Any = None) -> Any:
        """Like the builtin `pow`, refusing integer results larger than the step's memory limit."""
        if mod is None:
            return checked_op(base, exp, False)
        return real_pow(base, exp, mod)

    return checked_op, pow


def owner_module(value: Any) -> str:
    """The top-level module a function or class comes from (for other objects: their class's module)."""
    if isinstance(value, _PER_OBJECT_OWNER_TYPES):
        name = getattr(value, "__module__", None)
    else:
        name = type(value).__module__
    return name.partition(".")[0] if isinstance(name, str) else ""


def _format_fields(template: str) -> Iterator[str]:
    for _literal, field, spec, _conversion in _string.formatter_parser(template):
        if field is not None:
            _first, rest = _string.formatter_field_name_split(field)
            for is_attribute, key in rest:
                if is_attribute:
                    yield key
        if spec:
            yield from _format_fields(spec)


SEALED_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
"""Classes whose overrides are a guard (e.g. the precision-capped decimal context): agent code may not reach the
base class's methods past them with `super(SealedClass, obj)`."""


class GuardedSuper(super):
    """Agent code's `super`: the real one, except past a sealed class.

    A subclass with no `__init__` of its own, so the zero-argument form still finds the calling frame's class.
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if super.__getattribute__(self, "__thisclass__") in SEALED_CLASSES:
            raise ForbiddenAttributeError(
                f"super() past {super.__getattribute__(self, '__thisclass__').__name__!r} is not allowed: its "
                "methods are the limits agent code runs under"
            )
        return super.__getattribute__(self, name)


class AttributeGuard:
    """The run-time half of the attribute policy, bound to one executor's module gate.

    `proxy_for(module)` returns the restricted proxy of a real module if agent code may have it, else None.
    """

    def __init__(
        self, proxy_for: Callable[[ModuleType], Any | None], is_authorized: Callable[[str], bool]
    ) -> None:
        self._proxy_for = proxy_for
        self._is_authorized = is_authorized
        # instances whose class passed the owner check once pass at the cost of a dict lookup from then on; classes
        # and functions that passed are remembered by id (and kept alive, so an id is never reused meanwhile)
        self._safe_instance_types: dict[type, bool] = {}
        self._safe_objects: dict[int, Any] = {}

    def _known_safe(self, value: Any) -> bool:
        kind = type(value)
        if self._safe_instance_types.get(kind):
            return True
        if kind is MethodType:
            value = value.__func__
        return id(value) in self._safe_objects

    # --- values ------------------------------------------------------------------------------------------------

    def vet(self, value: Any, name: str) -> Any:
        """Return `value` (read as attribute `name`) if agent code may hold it, its proxy if it is a module."""
        if self._known_safe(value):
            return value
        return self._vet_slow(value, name)

    def _vet_slow(self, value: Any, name: str) -> Any:
        if isinstance(value, ModuleType) and not getattr(type(value), "_codeloop_proxy", False):
            proxy = self._proxy_for(value)
            if proxy is None:
                raise ForbiddenAttributeError(
                    f"attribute {name!r} is the module {value.__name__!r}, which agent code may not use"
                )
            return proxy
        if isinstance(value, _INTERNAL_TYPES) or id(value) in _FORBIDDEN_BUILTIN_OBJECTS:
            raise ForbiddenAttributeError(
                f"attribute {name!r} is an interpreter internal or a forbidden builtin"
            )
        owner = owner_module(value)
        if owner in DANGEROUS_MODULES and not self._is_authorized(owner):
            raise ForbiddenAttributeError(
                f"attribute {name!r} leads to {owner!r} ({type(value).__name__}), which agent code may not use"
            )
        kind = type(value)
        if not isinstance(value, _PER_OBJECT_OWNER_TYPES) and not issubclass(kind, ModuleType):
            self._safe_instance_types[kind] = True
        elif isinstance(value, (type, FunctionType)):
            self._safe_objects[id(value)] = value
        elif kind is MethodType and isinstance(value.__func__, FunctionType):
            self._safe_objects[id(value.__func__)] = value.__func__
        return value

    def read_private(self, obj: Any, name: str) -> Any:
        """`obj._name` for agent code (single leading underscore): no static rule applies, the value is vetted."""
        value = getattr(obj, name)
        if self._known_safe(value):
            return value
        if name in _NAMEDTUPLE_API and isinstance(obj, tuple):
            return value
        return self._vet_slow(value, name)

    def _clean_dict(self, owner: Any, mapping: Any) -> Any:
        if isinstance(owner, type):
            blocked = {"format", "format_map"} if issubclass(owner, str) else set()
            return MappingProxyType(
                {
                    key: value
                    for key, value in mapping.items()
                    if not (
                        isinstance(key, str) and (attribute_refusal(key) or key in _HOOKS or key in blocked)
                    )
                }
            )
        for key, value in list(mapping.items()):
            try:
                self.vet(value, str(key))
            except ForbiddenAttributeError:
                safe = {}
                for k, v in mapping.items():
                    try:
                        safe[k] = self.vet(v, str(k))
                    except ForbiddenAttributeError:
                        continue
                return MappingProxyType(safe)
        return mapping

    def _hook(self, owner: Any, name: str, hook: Any) -> Callable[..., Any]:
        name_index = 1 if isinstance(owner, type) else 0
        store = name != "__getattribute__" and name != "__getattr__"
        guard = self

        def checked_hook(*args: Any, **kwargs: Any) -> Any:
            if len(args) > name_index and isinstance(args[name_index], str):
                reason = attribute_refusal(args[name_index], store=store)
                if reason is None and args[name_index] in ("__match_args__", "__class__", "__dict__"):
                    reason = f"changing {args[name_index]!r} is not allowed"
                if reason:
                    raise ForbiddenAttributeError(reason)
                result = hook(*args, **kwargs)
                return result if store else guard.vet(result, args[name_index])
            raise TypeError(f"{name} expects an attribute name (str)")

        checked_hook.__name__ = checked_hook.__qualname__ = name
        return checked_hook

    def _checked_format(self, owner: Any, name: str, method: Any) -> Callable[..., Any]:
        bound = not isinstance(owner, type)
        template_of: Callable[[tuple[Any, ...]], Any] = (
            (lambda a: owner) if bound else (lambda a: a[0] if a else "")
        )

        def checked_format(*args: Any, **kwargs: Any) -> Any:
            template = template_of(args)
            if isinstance(template, str):
                for key in _format_fields(template):
                    reason = attribute_refusal(key) or (
                        f"format field attribute {key!r} is private" if key.startswith("_") else None
                    )
                    if reason:
                        raise ForbiddenAttributeError(f"format string refused: {reason}")
            return method(*args, **kwargs)

        checked_format.__name__ = checked_format.__qualname__ = name
        return checked_format

    # --- attribute access --------------------------------------------------------------------------------------

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        """`getattr` for agent code: the policy's refusals, vetted values, guarded hooks and format methods."""
        if not isinstance(name, str):
            raise TypeError(f"attribute name must be a string, not {type(name).__name__!r}")
        if len(default) > 1:
            raise TypeError(f"getattr expected at most 3 arguments, got {2 + len(default)}")
        try:
            return self.read(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise

    def read(self, obj: Any, name: str) -> Any:
        """Read attribute `name` of `obj` for agent code (what instrumented `obj.name` compiles to)."""
        if name in _PLAIN_DUNDERS:  # the common case (`super().__init__`, `x.__class__`): no special handling
            value = getattr(obj, name)
            return value if self._known_safe(value) else self._vet_slow(value, name)
        reason = attribute_refusal(name)
        if reason:
            raise ForbiddenAttributeError(reason)
        value = getattr(obj, name)
        if is_dunder(name):
            if name == "__dict__":
                return self._clean_dict(obj, value)
            if name in _HOOKS:
                return self._hook(obj, name, value)
        elif name in ("format", "format_map") and (
            isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
        ):
            return self._checked_format(obj, name, value)
        elif name.startswith("_") and name in _NAMEDTUPLE_API and isinstance(obj, tuple):
            return value
        return self.vet(value, name)

    def hasattr(self, obj: Any, name: str) -> bool:
        """`hasattr` for agent code: False for what it may not read."""
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        """`setattr` for agent code: no interpreter internals, no dunders beyond what decorators set."""
        if not isinstance(name, str):
            raise TypeError(f"attribute name must be a string, not {type(name).__name__!r}")
        reason = attribute_refusal(name, store=True)
        if reason:
            raise ForbiddenAttributeError(reason)
        setattr(obj, name, value)

    def delattr(self, obj: Any, name: str) -> None:
        """`delattr` for agent code, under the same rules as `setattr`."""
        if not isinstance(name, str):
            raise TypeError(f"attribute name must be a string, not {type(name).__name__!r}")
        reason = attribute_refusal(name, store=True)
        if reason:
            raise ForbiddenAttributeError(reason)
        delattr(obj, name)

    def check_match(self, subject: Any, classes: Callable[[], tuple[Any, ...]]) -> Any:
        """Before a `match` runs: refuse class patterns whose `__match_args__` name forbidden attributes."""
        try:
            candidates = classes()
        except NameError:
            raise ForbiddenAttributeError(
                "a class used in a `case` pattern could not be checked; define it at module level"
            ) from None
        for cls in candidates:
            if not isinstance(cls, type):
                continue
            meta: type = type(cls)
            if meta.__getattribute__ is not type.__getattribute__ or any(
                "__match_args__" in vars(k) or "__getattr__" in vars(k) for k in meta.__mro__
            ):
                raise ForbiddenAttributeError(
                    f"class {cls.__name__!r} has a metaclass that customises attributes"
                )
            names = getattr(cls, "__match_args__", ())
            if not isinstance(names, tuple):
                continue
            for key in names:
                if isinstance(key, str) and (attribute_refusal(key) or key.startswith("_")):
                    raise ForbiddenAttributeError(
                        f"class {cls.__name__!r} matches positional patterns on attribute {key!r}, which is not "
                        "accessible"
                    )
        return subject

    def install(self, table: dict[str, Any]) -> None:
        """Put the guarded builtins and the hooks instrumented code calls into a builtins dict."""
        table["getattr"] = self.getattr
        table["hasattr"] = self.hasattr
        table["setattr"] = self.setattr
        table["delattr"] = self.delattr
        table[_VET] = self.read
        table[_PRIVATE] = self.read_private
        table[_FMT] = self.read
        table[_MATCH] = self.check_match


# --- instrumentation ------------------------------------------------------------------------------------------------


def _name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


def _check_statement(anchor: ast.AST) -> ast.stmt:
    halt = ast.Expr(value=ast.Call(func=_name(HALT), args=[], keywords=[]))
    check = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=_name(OK_FLAG)), body=[halt], orelse=[])
    for node in ast.walk(check):
        ast.copy_location(node, anchor)
    return check


def _mangle(name: str, class_name: str | None) -> str:
    if class_name is None or not name.startswith("__") or name.endswith("__"):
        return name
    stripped = class_name.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


def _render_outside_statement(anchor: ast.AST, self_name: str) -> ast.stmt:
    # __repr__/__str__ called by the host after the step: the text rendered in the step, or object.__repr__
    fallback = ast.Return(value=ast.Call(func=_name(UNRENDERED), args=[_name(self_name)], keywords=[]))
    check = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=_name(OK_FLAG)), body=[fallback], orelse=[])
    for node in ast.walk(check):
        ast.copy_location(node, anchor)
    return check


class _Instrumenter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.class_names: list[str | None] = [None]
        self.in_class_body = [False]

    def _guard_body(self, body: list[ast.stmt], check: ast.stmt) -> list[ast.stmt]:
        first = body[0] if body else None
        docstring = (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        )
        return [body[0], check, *body[1:]] if docstring else [check, *body]

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        method = self.in_class_body[-1]
        self.class_names.append(self.class_names[-1])
        self.in_class_body.append(False)
        self.generic_visit(node)
        self.in_class_body.pop()
        self.class_names.pop()
        positional = [*node.args.posonlyargs, *node.args.args]
        if (
            method
            and node.name in ("__repr__", "__str__")
            and positional
            and isinstance(node, ast.FunctionDef)
        ):
            check = _render_outside_statement(node, positional[0].arg)
        else:
            check = _check_statement(node)
        node.body = self._guard_body(node.body, check)
        return node

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        for field in ("bases", "keywords", "decorator_list"):
            setattr(node, field, [self.visit(child) for child in getattr(node, field)])
        self.class_names.append(node.name)
        self.in_class_body.append(True)
        body: list[ast.stmt] = []
        for statement in node.body:
            visited = self.visit(statement)
            body.extend(visited if isinstance(visited, list) else [visited])
        node.body = body
        self.in_class_body.pop()
        self.class_names.pop()
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.generic_visit(node)
        halt = ast.Call(func=_name(HALT), args=[], keywords=[])
        node.body = ast.copy_location(ast.IfExp(test=_name(OK_FLAG), body=node.body, orelse=halt), node.body)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        node.body = [_check_statement(node), *node.body]
        return node

    def _visit_try(self, node: Any) -> ast.AST:
        self.generic_visit(node)
        if node.finalbody:
            node.finalbody = [_check_statement(node), *node.finalbody]
        return node

    visit_Try = _visit_try
    visit_TryStar = _visit_try

    def _visit_with(self, node: ast.With | ast.AsyncWith) -> list[ast.stmt]:
        self.generic_visit(node)
        # a context manager's __exit__ can swallow the stop signal; check again once the block is left
        return [node, _check_statement(node)]

    visit_With = _visit_with
    visit_AsyncWith = _visit_with

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        attr = node.attr
        if not isinstance(node.ctx, ast.Load):
            return node
        if not (attr.startswith("_") or attr in VETTED_ATTRIBUTES):
            return node
        attr = _mangle(attr, self.class_names[-1])
        if attr in ("format", "format_map"):
            helper = _FMT
        elif attr.startswith("_") and not attr.startswith("__"):
            helper = _PRIVATE
        else:
            helper = _VET
        name = ast.Constant(value=attr)
        call = ast.Call(func=_name(helper), args=[node.value, name], keywords=[])
        return ast.copy_location(call, node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guarded = _big_int_call(node.op, node.left, node.right, node)
        return node if guarded is None else guarded

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.target, ast.Name):
            return (
                node  # `a[i] <<= n` would evaluate its target twice if rewritten; left to the memory tripwire
            )
        load = ast.copy_location(ast.Name(id=node.target.id, ctx=ast.Load()), node.target)
        guarded = _big_int_call(node.op, load, node.value, node)
        if guarded is None:
            return node
        return ast.copy_location(ast.Assign(targets=[node.target], value=guarded), node)

    def visit_Match(self, node: ast.Match) -> ast.AST:
        self.generic_visit(node)
        classes: list[ast.expr] = []
        seen: set[str] = set()
        for case in node.cases:
            for pattern in ast.walk(case.pattern):
                if isinstance(pattern, ast.MatchClass) and pattern.patterns:
                    key = ast.dump(pattern.cls)
                    if key not in seen:
                        seen.add(key)
                        classes.append(copy.deepcopy(pattern.cls))
        if classes:
            thunk = ast.Lambda(
                args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                body=ast.Tuple(elts=list(classes), ctx=ast.Load()),
            )
            call = ast.Call(func=_name(_MATCH), args=[node.subject, thunk], keywords=[])
            node.subject = ast.copy_location(call, node.subject)
        return node


def _big_int_call(op: ast.operator, left: ast.expr, right: ast.expr, anchor: ast.AST) -> ast.expr | None:
    """`BIG_INT_OP(left, right, is_shift)` for `<<` and `**` unless the right operand is a small constant."""
    if not isinstance(op, (ast.LShift, ast.Pow)):
        return None
    small = _SMALL_SHIFT if isinstance(op, ast.LShift) else _SMALL_EXPONENT
    if isinstance(right, ast.Constant) and (
        not isinstance(right.value, int) or isinstance(right.value, bool) or right.value <= small
    ):
        return None
    shift = ast.Constant(value=isinstance(op, ast.LShift))
    call = ast.Call(func=_name(BIG_INT_OP), args=[left, right, shift], keywords=[])
    return ast.copy_location(call, anchor)


def instrument(tree: ast.Module) -> ast.Module:
    """Rewrite a checked module for LocalExecutor: stop checks, vetted attribute reads, last-expression capture.

    If the last statement is an expression, its value is assigned to `LAST_VALUE` so the executor can report it.
    """
    tree = _Instrumenter().visit(tree)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        assign = ast.Assign(targets=[ast.Name(id=LAST_VALUE, ctx=ast.Store())], value=last.value)
        tree.body[-1] = ast.copy_location(assign, last)
    return ast.fix_missing_locations(tree)
