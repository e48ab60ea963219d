"""Imports for LocalExecutor: authorized modules reach agent code only as restricted proxies.

`import random` in agent code gets a `ModuleProxy`: a module object holding only the real module's public names,
minus functions and classes of dangerous modules, minus submodules that are not themselves authorized (so
`queue.threading` or `warnings.sys` do not exist), minus a few known gadgets per module. Some attributes are
replaced by versions that respect the step's limits: `time.sleep` and blocking queue operations wake up
regularly so the time limit can stop them, asyncio event loops never block for long, `random` gets a generator of
its own per executor, `operator.attrgetter`/`methodcaller` apply the attribute policy, and `decimal` contexts
cannot be given a precision that makes one native call run for minutes.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

from .guards import (
    DANGEROUS_MODULES,
    SEALED_CLASSES,
    AgentThreadMark,
    AttributeGuard,
    StepControl,
    agent_code_running,
    owner_module,
)
from .policy import import_error_message, is_import_authorized

__all__ = [
    "ModuleProxy",
    "ModuleGate",
    "HIDDEN_ATTRIBUTES",
    "WAIT_SLICE_SECONDS",
    "MAX_DECIMAL_PRECISION",
    "interruptible_loop_factory",
    "run_on_interruptible_loop",
]

WAIT_SLICE_SECONDS = 0.05
"""Longest a blocking call made by agent code waits before checking whether its step was stopped."""

MAX_DECIMAL_PRECISION = 100_000
"""Largest `decimal` precision agent code may set: beyond it one division can run for minutes in native code."""

HIDDEN_ATTRIBUTES: dict[str, frozenset[str]] = {
    # evaluates string annotations with the real builtins
    "typing": frozenset({"get_type_hints"}),
    # Formatter.get_field resolves `{0.__init__.__globals__}` with the real getattr
    "string": frozenset({"Formatter"}),
    # live frames of the whole stack, and frame locals rendered with capture_locals
    "traceback": frozenset(
        {"walk_stack", "walk_tb", "extract_stack", "print_stack", "format_stack", "StackSummary", "FrameSummary",
         "TracebackException", "clear_frames"}
    ),
    "logging": frozenset({"FileHandler", "basicConfig", "currentframe", "setLoggerClass", "setLogRecordFactory"}),
    "gzip": frozenset({"open", "GzipFile"}),
    "bz2": frozenset({"open", "BZ2File"}),
    "lzma": frozenset({"open", "LZMAFile"}),
    "xml.etree.ElementTree": frozenset({"parse", "iterparse", "ElementTree", "XMLPullParser"}),
    "asyncio": frozenset(
        {"subprocess", "create_subprocess_exec", "create_subprocess_shell", "open_connection", "start_server",
         "open_unix_connection", "start_unix_server", "to_thread", "get_event_loop_policy", "set_event_loop_policy",
         "DefaultEventLoopPolicy", "AbstractEventLoopPolicy", "SelectorEventLoop", "BaseEventLoop",
         "set_event_loop", "get_event_loop", "get_child_watcher", "set_child_watcher", "run_coroutine_threadsafe",
         "ThreadedChildWatcher", "PidfdChildWatcher", "SafeChildWatcher", "FastChildWatcher",
         "MultiLoopChildWatcher", "AbstractChildWatcher", "unix_events", "base_events", "events"}
    ),
    "uuid": frozenset({"getnode", "uuid1"}),
    # the import system itself, and switches that change the whole interpreter
    "sys": frozenset(
        {"meta_path", "path_hooks", "path_importer_cache", "path", "settrace", "setprofile", "setrecursionlimit",
         "setswitchinterval", "set_int_max_str_digits", "addaudithook", "setdlopenflags", "call_tracing",
         "activate_stack_trampoline", "set_asyncgen_hooks", "set_coroutine_origin_tracking_depth",
         "breakpointhook", "displayhook", "excepthook", "unraisablehook", "stdin"}
    ),
    "importlib": frozenset({"find_loader", "reload"}),
    # authorizing `builtins` gives agent code its own curated builtins (see the override), never these
    # code generation and execution, external programs (pager, LaTeX viewer), the test runner
    "sympy": frozenset({"lambdify", "preview", "pager_print", "print_gtk", "init_session", "init_printing", "test",
                        "doctest"}),
    "builtins": frozenset({"eval", "exec", "compile", "open", "globals", "locals", "vars", "input", "breakpoint",
                           "help", "exit", "quit"}),
}  # fmt: skip
"""Public names removed from a module's proxy: each one reads or writes files, starts processes, threads or
connections, or evaluates strings with the host's builtins."""


class _NativeImportDone(ModuleType):
    """What `__import__` returns to native code: CPython ignores it and takes the module from sys.modules."""


_NATIVE_IMPORT_DONE = _NativeImportDone("codeloop-native-import")


class ModuleProxy(ModuleType):
    """What agent code gets for an authorized module: a module holding only the names it may use."""

    _codeloop_proxy = True

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"module {self.__name__!r} has no attribute {name!r} available to agent code (private names, "
            "unauthorized submodules and functions that reach files, processes or the interpreter are left out)"
        )

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (restricted)>"


class ModuleGate:
    """Imports authorized modules for one executor and hands out their proxies."""

    def __init__(
        self,
        authorized: Collection[str],
        control: StepControl,
        write_output: Callable[[str], Any],
    ) -> None:
        self.authorized = authorized
        self.control = control
        self.guard = AttributeGuard(
            self.proxy_for_module, lambda module: is_import_authorized(module, authorized)
        )
        self.write_output = write_output
        self.builtins: dict[str, Any] = {}
        """Agent code's own builtins, which a proxy of the authorized `builtins` module holds instead of the real
        ones (set by the executor)."""
        self._proxies: dict[str, ModuleProxy] = {}
        self._lock = threading.RLock()
        self._step_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._marks: list[AgentThreadMark] = []

    def add_step_hooks(self, enter: Callable[[], None], leave: Callable[[], None]) -> None:
        """Register thread-state swaps to run when a step starts and ends (e.g. the decimal context)."""
        self._step_hooks.append((enter, leave))

    def enter_step(self) -> None:
        """Install agent code's thread state (a step may run on a host thread)."""
        self._marks.append(AgentThreadMark(True))
        for enter, _ in self._step_hooks:
            enter()

    def leave_step(self) -> None:
        """Put the host's thread state back."""
        for _, leave in reversed(self._step_hooks):
            leave()
        if self._marks:
            self._marks.pop().restore()

    # --- import ------------------------------------------------------------------------------------------------

    def _real_import(self, name: str) -> ModuleType:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            raise ModuleNotFoundError(
                f"No module named {name!r} could be imported: {err}", name=name
            ) from None

    def import_module(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Collection[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        """The `__import__` agent code runs: only authorized modules, returned as proxies.

        CPython also calls it when native code of a module imports for itself during a step (`datetime.strptime`
        needs `_strptime`, numpy's C code needs `numpy._core._methods`): `PyImport_Import` takes `__import__`
        from the builtins of the running frame, which is agent code's. Those calls, recognisable by their empty
        *list* `fromlist` (agent code's import statements pass None or a tuple), import the real module, which
        CPython then takes from `sys.modules` for the C caller: agent code never receives it.
        """
        if level == 0 and type(fromlist) is list and not fromlist and isinstance(name, str):
            self._import_for_native_code(name)
            return _NATIVE_IMPORT_DONE
        if level:
            raise ImportError("relative imports are not allowed in agent code")
        if not isinstance(name, str) or not name:
            raise ImportError("module name must be a non-empty string")
        if not is_import_authorized(name, self.authorized):
            raise ImportError(import_error_message(name))
        self._real_import(name)
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            self.proxy(".".join(parts[:depth]))
        if not fromlist:
            return self.proxy(parts[0])
        proxy = self.proxy(name)
        for item in fromlist:
            if item == "*" or item in proxy.__dict__:
                continue
            submodule = f"{name}.{item}"
            if is_import_authorized(submodule, self.authorized):
                try:
                    self._real_import(submodule)
                except ImportError:
                    pass
                else:
                    self.proxy(submodule)
                    continue
            if item not in proxy.__dict__:
                hint = (
                    ""
                    if is_import_authorized(submodule, self.authorized)
                    else f" ({import_error_message(submodule)})"
                )
                raise ImportError(
                    f"cannot import name {item!r} from {name!r}: not available to agent code{hint}"
                )
        return proxy

    def _import_for_native_code(self, name: str) -> None:
        top = name.partition(".")[0]
        if (top in DANGEROUS_MODULES or top == "builtins") and not is_import_authorized(
            name, self.authorized
        ):
            raise ImportError(
                f"native code asked for {name!r} during a step, which agent code may not use: "
                + import_error_message(name)
            )
        self._real_import(name)

    def import_for_agent(self, name: str) -> ModuleProxy:
        """`importlib.import_module(name)` for agent code: the proxy of exactly that module, if authorized."""
        if not isinstance(name, str) or not name or name.startswith("."):
            raise ImportError(
                "agent code can import only absolute module names (relative imports are not allowed)"
            )
        self.import_module(name)
        return self.proxy(name)

    # --- proxies -----------------------------------------------------------------------------------------------

    def proxy_for_module(self, module: ModuleType) -> ModuleProxy | None:
        """The proxy agent code may hold for a real module it reached through an attribute, or None."""
        name = getattr(module, "__name__", None)
        if not isinstance(name, str) or sys.modules.get(name) is not module:
            return None
        if not is_import_authorized(name, self.authorized):
            return None
        return self.proxy(name)

    def proxy(self, name: str) -> ModuleProxy:
        """The (cached) proxy of module `name`; a package that is not itself authorized exposes only the
        authorized submodules below it."""
        with self._lock:
            cached = self._proxies.get(name)
            module = sys.modules.get(name)
            if cached is None:
                if module is None:
                    module = self._real_import(name)
                cached = self._build(name, module)
                self._proxies[name] = cached
            parent, _, child = name.rpartition(".")
            if parent and parent in self._proxies:
                self._proxies[parent].__dict__[child] = cached
            return cached

    def _build(self, name: str, module: ModuleType) -> ModuleProxy:
        proxy = ModuleProxy(name, module.__doc__ if isinstance(module.__doc__, str) else None)
        full = is_import_authorized(name, self.authorized)
        top = name.partition(".")[0]
        hidden = HIDDEN_ATTRIBUTES.get(name, frozenset())
        contents = dict(vars(module))
        for key, value in contents.items():
            if not isinstance(key, str) or key in hidden:
                continue
            if isinstance(value, ModuleType):
                sub = f"{name}.{key}"
                if is_import_authorized(sub, self.authorized) and sys.modules.get(sub) is value:
                    proxy.__dict__[key] = self.proxy(sub)
                continue
            if not full or key.startswith("_"):
                continue
            owner = owner_module(value)
            # a module the developer authorized although it is on the dangerous list (threading, say) keeps what it
            # re-exports (threading.Lock is _thread's); others never hand out objects of dangerous modules
            trusted = top in DANGEROUS_MODULES or owner == top
            if (
                owner in DANGEROUS_MODULES
                and not trusted
                and not is_import_authorized(owner, self.authorized)
            ):
                continue
            proxy.__dict__[key] = value
        if full:
            for key in ("__version__", "__all__"):
                if key in contents:
                    proxy.__dict__[key] = contents[key]
            override = _OVERRIDES.get(name)
            if override is not None:
                proxy.__dict__.update(override(self, module))
        return proxy


# --- per-module replacements -----------------------------------------------------------------------------------------


def _sliced_wait(control: StepControl, wait: Callable[[float], bool], timeout: float | None) -> bool:
    """Call `wait(slice)` until it returns True or `timeout` passes, checking the step between slices."""
    end = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        control.check()
        left = WAIT_SLICE_SECONDS if end is None else min(WAIT_SLICE_SECONDS, end - time.monotonic())
        if left <= 0:
            return False
        if wait(left):
            return True


def _time_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    control = gate.control
    real_sleep = module.sleep

    def sleep(seconds: float) -> None:
        """Sleep for `seconds`; the executor's time limit can interrupt it."""
        seconds = float(seconds)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        end = time.monotonic() + seconds
        while True:
            control.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            real_sleep(min(left, WAIT_SLICE_SECONDS))

    return {"sleep": sleep}


def _random_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    # a generator of its own: agent code seeding `random` must not change the host's random numbers
    generator = module.Random()
    return {name: getattr(generator, name) for name in module.__all__ if hasattr(module.Random, name)}


def _queue_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    control = gate.control

    class _Condition(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            return _sliced_wait(control, lambda s: threading.Condition.wait(self, s), timeout)

    def _rebuild(queue: Any) -> None:
        # re-entrant lock: with no threads available, a second acquire would otherwise block forever
        queue.mutex = threading.RLock()
        queue.not_empty = _Condition(queue.mutex)
        queue.not_full = _Condition(queue.mutex)
        queue.all_tasks_done = _Condition(queue.mutex)

    def make(base: type) -> type:
        class Guarded(base):  # type: ignore[valid-type,misc]
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                _rebuild(self)

        Guarded.__name__ = Guarded.__qualname__ = base.__name__
        Guarded.__module__, Guarded.__doc__ = "queue", base.__doc__
        return Guarded

    class SimpleQueue(module.SimpleQueue):  # type: ignore[name-defined,misc]
        """An unbounded FIFO queue whose blocking `get` the executor's time limit can interrupt."""

        def get(self, block: bool = True, timeout: float | None = None) -> Any:
            if not block:
                return super().get(False)
            result: list[Any] = []

            def attempt(seconds: float) -> bool:
                try:
                    result.append(module.SimpleQueue.get(self, True, seconds))
                except module.Empty:
                    return False
                return True

            if _sliced_wait(control, attempt, timeout):
                return result[0]
            raise module.Empty

    SimpleQueue.__module__ = "queue"
    return {
        "Queue": make(module.Queue),
        "LifoQueue": make(module.LifoQueue),
        "PriorityQueue": make(module.PriorityQueue),
        "SimpleQueue": SimpleQueue,
    }


def _operator_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    read = gate.guard.read

    def attrgetter(*names: str) -> Callable[[Any], Any]:
        """Like `operator.attrgetter`, under the attribute policy."""
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError("attribute name must be a string")
        paths = [n.split(".") for n in names]

        def resolve(obj: Any, path: list[str]) -> Any:
            for part in path:
                obj = read(obj, part)
            return obj

        if len(paths) == 1:
            return lambda obj: resolve(obj, paths[0])
        return lambda obj: tuple(resolve(obj, p) for p in paths)

    def methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Like `operator.methodcaller`, under the attribute policy."""
        if not isinstance(name, str):
            raise TypeError("method name must be a string")
        return lambda obj: read(obj, name)(*args, **kwargs)

    return {"attrgetter": attrgetter, "methodcaller": methodcaller}


def _decimal_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    base = module.Context

    def _check(prec: Any) -> None:
        if isinstance(prec, int) and prec > MAX_DECIMAL_PRECISION:
            raise ValueError(f"decimal precision is capped at {MAX_DECIMAL_PRECISION} digits in agent code")

    class Context(base):  # type: ignore[misc,valid-type]
        """A decimal context whose precision is capped (see MAX_DECIMAL_PRECISION)."""

        def __init__(self, prec: Any = None, *args: Any, **kwargs: Any) -> None:
            _check(prec)
            super().__init__(prec, *args, **kwargs)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "prec":
                _check(value)
            super().__setattr__(name, value)

        def copy(self) -> Context:
            return _capped(self)

        __copy__ = copy

    Context.__module__ = "decimal"
    SEALED_CLASSES.add(Context)  # its base's copy() would hand out an uncapped context

    def _capped(ctx: Any) -> Context:
        return Context(
            prec=min(ctx.prec, MAX_DECIMAL_PRECISION), rounding=ctx.rounding, Emin=ctx.Emin, Emax=ctx.Emax,
            capitals=ctx.capitals, clamp=ctx.clamp, flags=[f for f, on in ctx.flags.items() if on],
            traps=[t for t, on in ctx.traps.items() if on],
        )  # fmt: skip

    def getcontext() -> Context:
        """The current thread's decimal context (precision-capped)."""
        ctx = module.getcontext()
        if not isinstance(ctx, Context):
            ctx = _capped(ctx)
            module.setcontext(ctx)
        return ctx

    def setcontext(ctx: Any) -> None:
        """Set the current thread's decimal context (precision-capped)."""
        if not isinstance(ctx, base):
            raise TypeError("argument must be a context")
        module.setcontext(ctx if isinstance(ctx, Context) else _capped(ctx))

    class localcontext:
        """Context manager: a capped copy of a context for the duration of a `with` block."""

        def __init__(self, ctx: Any = None, **changes: Any) -> None:
            self._ctx, self._changes = ctx, changes

        def __enter__(self) -> Context:
            self._saved = getcontext()
            new = _capped(self._ctx if self._ctx is not None else self._saved)
            for key, value in self._changes.items():
                setattr(new, key, value)
            module.setcontext(new)
            return new

        def __exit__(self, *exc_info: Any) -> None:
            module.setcontext(self._saved)

    # agent code keeps a decimal context of its own; the host thread's context is put back after every step
    saved: dict[str, Any] = {"agent": _capped(module.getcontext())}

    def enter() -> None:
        saved["host"] = module.getcontext()
        module.setcontext(saved["agent"])

    def leave() -> None:
        saved["agent"] = module.getcontext()
        module.setcontext(saved.pop("host"))

    gate.add_step_hooks(enter, leave)
    if gate.control.running:  # imported during a step: swap now, the step's end swaps back
        enter()
    return {
        "Context": Context, "getcontext": getcontext, "setcontext": setcontext, "localcontext": localcontext,
        "DefaultContext": _capped(module.DefaultContext), "BasicContext": _capped(module.BasicContext),
        "ExtendedContext": _capped(module.ExtendedContext),
    }  # fmt: skip


def interruptible_loop_factory(control: StepControl) -> Callable[[], Any]:
    """A factory of asyncio event loops that never block longer than WAIT_SLICE_SECONDS, so a stopped step ends."""
    import asyncio
    import selectors

    class _Selector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
        def select(self, timeout: float | None = None) -> Any:
            control.check()
            if timeout is None or timeout > WAIT_SLICE_SECONDS:
                timeout = WAIT_SLICE_SECONDS
            return super().select(timeout)

    return lambda: asyncio.SelectorEventLoop(_Selector())


def run_on_interruptible_loop(factory: Callable[[], Any], main: Any, *, debug: bool | None = None) -> Any:
    """Run coroutine `main` on a fresh loop from `factory`; cancel what it leaves behind; close the loop."""
    import asyncio

    loop = factory()
    try:
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _asyncio_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    factory = interruptible_loop_factory(gate.control)

    def run(main: Any, *, debug: bool | None = None) -> Any:
        """Run a coroutine to completion on a fresh event loop the executor's time limit can stop."""
        return run_on_interruptible_loop(factory, main, debug=debug)

    replacements: dict[str, Any] = {"run": run, "new_event_loop": factory}
    if hasattr(module, "Runner"):  # Python >= 3.11

        class Runner(module.Runner):  # type: ignore[misc,name-defined]
            """asyncio.Runner whose loops the executor's time limit can stop."""

            def __init__(self, *, debug: bool | None = None, loop_factory: Any = None) -> None:
                super().__init__(debug=debug, loop_factory=loop_factory or factory)

        Runner.__module__ = "asyncio"
        replacements["Runner"] = Runner
    return replacements


def _traceback_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    class _Writer:
        def write(self, text: str) -> None:
            gate.write_output(text)

        def flush(self) -> None:
            """Nothing buffered."""

    def print_exc(limit: int | None = None, file: Any = None, chain: bool = True) -> None:
        """Print the exception being handled into the step's output."""
        module.print_exc(limit=limit, file=file or _Writer(), chain=chain)

    def print_exception(exc: Any, /, value: Any = None, tb: Any = None, limit: Any = None, file: Any = None,
                        chain: bool = True) -> None:  # fmt: skip
        """Print an exception and its traceback into the step's output."""
        if value is None and tb is None:
            module.print_exception(exc, limit=limit, file=file or _Writer(), chain=chain)
        else:
            module.print_exception(exc, value, tb, limit=limit, file=file or _Writer(), chain=chain)

    return {"print_exc": print_exc, "print_exception": print_exception}


class _OutputStream:
    """What `sys.stdout`/`sys.stderr` are for agent code: text and bytes written go to the step's output."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, name: str, write_output: Callable[[str], Any]) -> None:
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # closures, not attributes: agent code must not reach the executor's callbacks through the stream
        self.name = name
        self.write: Callable[[str], int] = _text_writer(write_output)
        self.buffer = _BinaryStream(name, write_output, decoder)

    def writelines(self, lines: Any) -> None:
        """Write each string of `lines`."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        """Not a terminal."""
        return False

    def writable(self) -> bool:
        """Always writable."""
        return True

    def readable(self) -> bool:
        """Never readable."""
        return False

    def seekable(self) -> bool:
        """Never seekable."""
        return False

    @property
    def closed(self) -> bool:
        """Never closed."""
        return False

    def fileno(self) -> int:
        """There is no file descriptor behind this stream."""
        raise OSError(f"sys.{self.name} of agent code has no file descriptor; write to it instead")


class _BinaryStream:
    """`sys.stdout.buffer` for agent code: bytes are decoded as UTF-8 (invalid bytes replaced) into the output."""

    def __init__(self, name: str, write_output: Callable[[str], Any], decoder: Any) -> None:
        def write(data: Any) -> int:
            """Write bytes (or any bytes-like object) to the step's output."""
            chunk = bytes(memoryview(data))
            text = decoder.decode(chunk)
            if text:
                write_output(text)
            return len(chunk)

        self.name = f"{name}.buffer"
        self.write = write

    def writelines(self, lines: Any) -> None:
        """Write each bytes object of `lines`."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered beyond an incomplete UTF-8 sequence, which waits for its next bytes."""

    def isatty(self) -> bool:
        """Not a terminal."""
        return False

    def writable(self) -> bool:
        """Always writable."""
        return True

    @property
    def closed(self) -> bool:
        """Never closed."""
        return False


def _text_writer(write_output: Callable[[str], Any]) -> Callable[[str], int]:
    def write(text: str) -> int:
        """Write `text` to the step's output."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        write_output(text)
        return len(text)

    return write


def _sys_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    from collections.abc import Iterator, Mapping

    def available(name: Any) -> bool:
        return (
            isinstance(name, str) and name in module.modules and is_import_authorized(name, gate.authorized)
        )

    class ModulesView(Mapping):  # type: ignore[type-arg]
        """`sys.modules` for agent code: the loaded modules it may import, as their restricted proxies."""

        def __getitem__(self, name: Any) -> ModuleProxy:
            if not available(name):
                reason = import_error_message(name) if isinstance(name, str) else "module names are strings"
                raise KeyError(f"{name!r} is not among the modules available to agent code. {reason}")
            return gate.proxy(name)

        def __iter__(self) -> Iterator[str]:
            return iter([name for name in list(module.modules) if available(name)])

        def __len__(self) -> int:
            return sum(1 for name in list(module.modules) if available(name))

        def __repr__(self) -> str:
            return f"<sys.modules of agent code: {len(self)} modules>"

    ModulesView.__module__ = "sys"
    return {
        "modules": ModulesView(),
        "stdout": _OutputStream("stdout", gate.write_output),
        "stderr": _OutputStream("stderr", gate.write_output),
    }


def _importlib_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    def import_module(name: str, package: str | None = None) -> ModuleProxy:
        """Import an authorized module by name; agent code gets its restricted proxy."""
        return gate.import_for_agent(name)

    return {"import_module": import_module}


_SYMPY_REFUSED_NAMES = frozenset(
    {"getattr", "setattr", "delattr", "hasattr", "type", "object", "super", "vars", "dir", "globals", "locals",
     "classmethod", "staticmethod", "property", "memoryview", "breakpoint", "input", "print", "format",
     "format_map", "eval", "exec", "compile", "open", "help", "exit", "quit", "lambdify", "preview",
     "init_session", "init_printing", "var", "test", "doctest", "pager_print", "print_gtk"}
)  # fmt: skip
"""Names a string handed to sympy by agent code may not use: introspection, code execution, files, programs."""


def _sympy_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    # Every sympy function sympifies its arguments, and sympify parses strings with eval() and the real builtins;
    # all of it goes through sympy_parser.eval_expr, wrapped once per process. On a thread running agent code, the
    # compiled expression may only use public names that are neither introspection/execution builtins nor
    # modules — what an expression like "x**2 + sin(y)" needs (sympy's own lazy imports parse such strings too).
    # Host code, tools included, is unaffected.
    from .policy import attribute_refusal

    parser = importlib.import_module("sympy.parsing.sympy_parser")
    original = parser.eval_expr
    if getattr(original, "_codeloop_guarded", False):
        return {}

    def refusal(code: Any, namespaces: tuple[Any, ...]) -> str | None:
        names = code.co_names
        for const in code.co_consts:
            if hasattr(const, "co_names"):  # a nested lambda or comprehension
                return "it defines a function"
        for name in names:
            if name.startswith("_") or name in _SYMPY_REFUSED_NAMES or attribute_refusal(name):
                return f"it uses {name!r}"
            if any(isinstance(ns, dict) and isinstance(ns.get(name), ModuleType) for ns in namespaces):
                return f"it uses the module {name!r}"
        return None

    def eval_expr(code: Any, local_dict: Any, global_dict: Any) -> Any:
        if agent_code_running():
            if isinstance(code, str):
                code = compile(code, "<sympy string>", "eval")
            reason = refusal(code, (local_dict, global_dict))
            if reason is not None:
                raise ValueError(
                    f"sympy evaluates strings with Python's eval(), so agent code may give it only plain math "
                    f"expressions; this one was refused because {reason}. Build expressions from symbols instead, "
                    "e.g. x = sympy.Symbol('x'); sympy.simplify(x**2 + 2*x + 1)"
                )
        return original(code, local_dict, global_dict)

    eval_expr._codeloop_guarded = True  # type: ignore[attr-defined]
    eval_expr.__doc__, eval_expr.__wrapped__ = original.__doc__, original  # type: ignore[attr-defined]
    parser.eval_expr = eval_expr  # type: ignore[attr-defined]
    return {}


def _builtins_overrides(gate: ModuleGate, module: ModuleType) -> dict[str, Any]:
    # agent code's own getattr, print, __import__...: the real ones would bypass the attribute and import policies
    return {name: value for name, value in gate.builtins.items() if not name.startswith("_")}


_OVERRIDES: dict[str, Callable[[ModuleGate, ModuleType], dict[str, Any]]] = {
    "sys": _sys_overrides,
    "importlib": _importlib_overrides,
    "builtins": _builtins_overrides,
    "sympy": _sympy_overrides,
    "time": _time_overrides,
    "random": _random_overrides,
    "queue": _queue_overrides,
    "operator": _operator_overrides,
    "decimal": _decimal_overrides,
    "asyncio": _asyncio_overrides,
    "traceback": _traceback_overrides,
}
