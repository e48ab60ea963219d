"""LocalExecutor: agent code as real compiled CPython in this process — a guardrail, not a security boundary.

Each step is checked by the static policy (`policy.py`), instrumented (`guards.py`), compiled, and executed
with `exec` in a persistent namespace on a worker thread that belongs to the executor. What the code can reach is
curated: its builtins have no `open`/`eval`/`exec`/`__import__`/`globals`..., `getattr` and friends apply the
attribute policy, and imports return restricted proxies of authorized modules (`modules.py`).

The calling thread watches the step. Past the time limit it stops the step: a flag that every user function,
`except` handler and `finally` block checks, plus an exception injected into the worker thread every few
milliseconds. If the worker is stuck inside one native call that never returns, the executor gives up on that
thread, starts afresh (variables are lost, tools stay) and says so.

Memory is watched per step without touching the process's limits: the same watcher samples the process's resident
memory every 20 ms and stops the step once it has grown by more than `memory_limit_mb` since the step began, and
integer `<<`/`**`/`pow` whose result alone would exceed the limit raise MemoryError before they allocate.

For untrusted code use `SandboxExecutor`, which runs it in a separate, isolated process.
"""

from __future__ import annotations

import ast
import builtins
import contextvars
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..._checks import check_limit
from ..._threads import start_thread
from ...approval import ApprovalRequired
from ...errors import ExecutionError
from ..base import ExecutionResult
from ..files import FileListing, WorkdirFiles
from ..output import (
    AGENT_CODE_FILENAME,
    OutputBuffer,
    describe_variables,
    find_tool_rebinding,
    format_exception,
    truncate_output,
)
from ..worker.workdir import DEFAULT_MAX_FILES, read_chunk, scan
from .guards import (
    BIG_INT_OP,
    LAST_VALUE,
    UNRENDERED,
    FinalAnswerSignal,
    GuardedSuper,
    StepControl,
    StepInterrupted,
    big_int_guard,
    instrument,
)
from .limits import MemoryTripwire, ThreadTimer, clear_injected_exception, inject_exception
from .modules import ModuleGate, interruptible_loop_factory, run_on_interruptible_loop
from .policy import FORBIDDEN_BUILTIN_NAMES, check_code, is_dunder, normalize_authorized_imports

__all__ = ["LocalExecutor", "LocalExecutionResult", "DEFAULT_TIMEOUT_SECONDS", "DEFAULT_MEMORY_LIMIT_MB"]

DEFAULT_TIMEOUT_SECONDS = 5.0
"""Default limit on a step's own execution time (time spent inside tools is not counted)."""

DEFAULT_MEMORY_LIMIT_MB = 512
"""Default limit on how much the process's resident memory may grow while one step runs."""

MEMORY_CHECK_INTERVAL = 0.02
"""How often a running step's memory growth is sampled (seconds)."""

STOP_GRACE_SECONDS = 1.0
"""How long a stopped step may take to unwind before its thread is given up as stuck in native code."""

_INJECT_INTERVAL = 0.02
_CODE_CACHE_SIZE = 128
_CO_COROUTINE = 0x0080
_KEPT_BUILTIN_DUNDERS = frozenset({"__build_class__", "__debug__"})


@dataclass
class LocalExecutionResult(ExecutionResult):
    """An `ExecutionResult` plus `output_repr`: `repr(output)` computed inside the step, under its limits.

    The host cannot call methods written by agent code once the step is over (they raise `OutsideStepError`), so
    show `output_repr` instead of calling `repr(output)` yourself. None when there is no output.
    """

    output_repr: str | None = None


_REPR_LIMIT = 20_000


@dataclass
class _Outcome:
    error: BaseException | None = None
    message: str | None = None
    output_repr: str | None = None
    variables: str = ""


@dataclass
class _State:
    """Everything one generation of the executor's namespace needs; replaced wholesale on reset."""

    namespace: dict[str, Any]
    table: dict[str, Any]
    control: StepControl
    gate: ModuleGate
    output: list[OutputBuffer]
    # the last output and its rendering, which agent-written __repr__/__str__ return when the host calls them
    rendered: dict[int, tuple[Any, str]] = field(default_factory=dict)


@dataclass
class _Job:
    code: Any
    source: str
    state: _State
    step: Callable[[_Job], None]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: _Outcome = field(default_factory=_Outcome)
    armed: bool = False
    started: bool = False
    reason: str | None = None
    # The caller's context variables (a copy): code run on the worker thread sees them as if run by the caller.
    # The run store links a managed agent's run to its manager's through one; without it, an agent run from any
    # thread but the main one (a web server's, an event loop's) recorded its managed agents' runs as orphans.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)

    def execute(self, disarm: Callable[[], None]) -> None:
        """Run the step once, then disarm; idempotent, so a late stop landing in executor code only retries."""
        while True:
            try:
                if not self.started:
                    self.started = True
                    self.context.run(self.step, self)
                disarm()
                break
            except BaseException as exc:  # noqa: BLE001 - a stop signal landing in executor code
                if self.outcome.error is None:
                    self.outcome.error = exc
        self.done.set()


def _disarm_worker(job: _Job, thread_id: int) -> None:
    with job.state.control.lock:
        job.armed = False
    clear_injected_exception(thread_id)


def _worker_loop(jobs: queue.SimpleQueue[_Job | None]) -> None:
    thread_id = threading.get_ident()
    while True:
        try:
            job = jobs.get()
        except BaseException:  # noqa: BLE001 - a stop injected just as the previous step ended
            continue
        if job is None:
            return
        while not job.done.is_set():
            try:
                job.execute(lambda job=job: _disarm_worker(job, thread_id))  # type: ignore[misc]
            except BaseException:  # noqa: BLE001
                continue
        # the job holds the executor (its bound step): dropped here so an executor nobody closes can be collected,
        # and its finalizer can end this thread
        del job


class _Worker:
    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = start_thread(_worker_loop, self.jobs, name=name)

    @property
    def ident(self) -> int:
        assert self.thread.ident is not None
        return self.thread.ident

    def stop(self) -> None:
        self.jobs.put(None)


class _MainThreadTimer:
    """Stops steps that run on the main thread with a timer signal; one step at a time, shared by all executors.

    A signal reaches what an injected exception cannot: CPython's regex engine checks for signals while it
    backtracks, and a blocking call returns with EINTR. The handler stays installed; it does nothing unless a step
    is armed and past its time limit (time inside tools excluded).
    """

    def __init__(self) -> None:
        self.timer: ThreadTimer | None = None
        self.failed = sys.platform != "linux"
        self.current: _Job | None = None
        self.start = 0.0
        self.timeout: float | None = None
        self.tripwire: MemoryTripwire | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.timer, self.current, self.failed = None, None, True  # timers do not survive fork

    def available(self) -> bool:
        """True if the calling thread can run a step inline under this timer right now."""
        if (
            self.failed
            or self.current is not None
            or threading.current_thread() is not threading.main_thread()
        ):
            return False
        asyncio = sys.modules.get("asyncio")
        if asyncio is not None and asyncio.events._get_running_loop() is not None:
            return False  # a running loop: agent code's own event loops need a thread of their own
        if self.timer is None:
            try:
                self._install()
            except (OSError, ValueError, AttributeError, RuntimeError):
                self.failed = True
                return False
        return True

    def _install(self) -> None:
        for signum in range(signal.SIGRTMIN + 6, signal.SIGRTMAX - 4):
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, self._on_signal)
                self.timer = ThreadTimer(signum, threading.get_native_id())
                return
        raise RuntimeError("no free real-time signal")

    def _on_signal(self, signum: int, frame: Any) -> None:
        job = self.current
        if job is None or not job.armed:
            return
        control = job.state.control
        if control.host_calls:  # a tool is host code: let it return; the next tick re-checks
            return
        if control.reason in ("memory", "timeout"):  # stopped already: keep stopping until the step unwinds
            raise StepInterrupted
        if self.tripwire is not None and self.tripwire.tripped():
            control.stop("memory")
            raise StepInterrupted
        if (
            self.timeout is not None
            and time.monotonic() - self.start - control.host_seconds_unlocked() >= self.timeout
        ):
            control.stop("timeout")
            raise StepInterrupted

    def run(self, job: _Job, timeout: float | None, memory_limit: int | None) -> None:
        """Run `job` on this (main) thread, stopped by the timer signal after `timeout` seconds or once memory grew
        by more than `memory_limit` bytes."""
        assert self.timer is not None
        timer = self.timer
        self.current, self.start, self.timeout = job, time.monotonic(), timeout
        self.tripwire = None if memory_limit is None else MemoryTripwire(memory_limit)

        def disarm() -> None:
            job.armed = False
            self.current = None
            timer.disarm()

        previous_sigint = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            # Ctrl-C cancels the step for good: `except BaseException` in agent code cannot swallow it
            if previous_sigint == signal.SIG_IGN:
                return
            job.state.control.stop("cancelled")
            if callable(previous_sigint):
                previous_sigint(signum, frame)
            raise KeyboardInterrupt

        control = job.state.control

        def arm() -> None:
            if self.tripwire is not None:
                timer.arm(MEMORY_CHECK_INTERVAL, MEMORY_CHECK_INTERVAL)
            elif timeout is not None:
                left = timeout - (time.monotonic() - self.start - control.host_seconds_unlocked())
                timer.arm(max(left, 1e-6), _INJECT_INTERVAL)

        # no timer signals while a tool (host code) runs: its blocking calls must not see EINTR every 20 ms
        control.host_hooks = (timer.disarm, arm)
        signal.signal(signal.SIGINT, on_sigint)
        try:
            arm()
            job.execute(disarm)
        finally:
            disarm()
            control.host_hooks = None
            self.tripwire = None
            signal.signal(signal.SIGINT, previous_sigint)


_MAIN_THREAD_TIMER = _MainThreadTimer()


class LocalExecutor(WorkdirFiles):
    """Runs agent code in this process as compiled CPython with a persistent namespace.

    Args:
        additional_authorized_imports: Modules agent code may import besides `DEFAULT_AUTHORIZED_IMPORTS`;
            `"pkg.*"` allows a package and its submodules, `"*"` allows everything.
        max_print_outputs_length: Printed output kept per step; beyond it the head and tail are kept and a note
            says how much was cut.
        timeout: Seconds a step's own code may run (time inside tools does not count); None for no limit.
        memory_limit_mb: How much the process's resident memory may grow during one step before the step is
            stopped (sampled every 20 ms; the process's own limits are never changed); integer `<<`, `**` and
            `pow` whose result alone would be larger raise MemoryError at once. None for no limit.
        inline: Run steps called from the main thread on the main thread, stopped by a timer signal (Linux):
            faster, and able to interrupt regex backtracking and blocking calls. Other callers, and platforms
            without the timer, use the executor's worker thread.
        workdir: The folder `list_files`, `files_changed`, `read_file` and `copy_file` cover (default: the
            process's working directory, where code that writes a relative path writes).
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        max_print_outputs_length: int = 50_000,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
        *,
        inline: bool = True,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(max_print_outputs_length, int) or max_print_outputs_length < 0:
            raise ValueError(
                f"max_print_outputs_length must be an int >= 0, got {max_print_outputs_length!r}"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if memory_limit_mb is not None and not memory_limit_mb > 0:
            raise ValueError(f"memory_limit_mb must be a positive number or None, got {memory_limit_mb!r}")
        self.authorized_imports = normalize_authorized_imports(additional_authorized_imports)
        self.max_print_outputs_length = max_print_outputs_length
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.inline = inline
        if workdir is not None and not os.path.isdir(workdir):
            raise ValueError(
                f"workdir {os.fspath(workdir)!r} is not a folder: create it first, or leave it out"
            )
        self.workdir = None if workdir is None else os.path.abspath(workdir)
        self._tools: dict[str, Any] = {}
        self._tool_names: frozenset[str] = frozenset({"final_answer"})
        self._variables: dict[str, Any] = {}
        self._code_cache: dict[str, Any] = {}
        self._worker: _Worker | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._run_lock = threading.Lock()
        self._output_hook: list[Callable[[str], Any] | None] = [None]
        self._state = self._new_state()

    @property
    def on_output(self) -> Callable[[str], Any] | None:
        """Called with each piece of printed text as the code prints it (streaming); None to stop."""
        return self._output_hook[0]

    @on_output.setter
    def on_output(self, callback: Callable[[str], Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError("on_output must be a callable taking the printed text, or None")
        self._output_hook[0] = callback

    # --- files the code wrote ---------------------------------------------------------------------------------

    def list_files(self, max_files: int = DEFAULT_MAX_FILES) -> FileListing:
        """The regular files under `workdir` (links are neither listed nor followed; at most `max_files`)."""
        check_limit("max_files", max_files, integer=True, optional=False)
        listing = scan(self.workdir or os.getcwd(), max_files)
        return FileListing.from_rows(listing["files"], listing["truncated"])

    def _read_chunk(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        return read_chunk(self.workdir or os.getcwd(), path, offset, length)

    # --- state ---------------------------------------------------------------------------------------------------

    def _new_state(self) -> _State:
        table = {
            name: value
            for name, value in vars(builtins).items()
            if name not in FORBIDDEN_BUILTIN_NAMES and (not is_dunder(name) or name in _KEPT_BUILTIN_DUNDERS)
        }
        control = StepControl(table)
        output = [OutputBuffer(self.max_print_outputs_length)]
        emit = _make_emit(output, self._output_hook, control)
        gate = ModuleGate(self.authorized_imports, control, emit)
        gate.guard.install(table)
        table["__import__"] = gate.import_module
        limit = None if self.memory_limit_mb is None else int(self.memory_limit_mb * 1024 * 1024)
        table[BIG_INT_OP], table["pow"] = big_int_guard(limit)
        table["print"] = _make_print(emit)
        table["super"] = GuardedSuper
        table["final_answer"] = _make_final_answer(control, None)
        gate.builtins = table
        namespace: dict[str, Any] = {"__builtins__": table, "__name__": "__main__", "__doc__": None}
        state = _State(namespace, table, control, gate, output)
        table[UNRENDERED] = _make_unrendered(state.rendered)
        self._install_tools(state, self._tools)
        namespace.update(self._variables)
        return state

    @staticmethod
    def _install_tools(state: _State, tools: dict[str, Any]) -> None:
        for name, tool in tools.items():
            if name == "final_answer":
                state.table["final_answer"] = _make_final_answer(state.control, tool)
            else:
                state.table[name] = _make_tool(state.control, name, tool)

    def send_tools(self, tools: dict[str, Any]) -> None:
        """Make these callables available to agent code under their names; `final_answer` is always there.

        Code gets a plain function that calls the tool, not the tool object itself, so it cannot reach the
        tool's attributes (clients, credentials). A `final_answer` tool, if given, transforms the answer.
        """
        for name, tool in tools.items():
            if not isinstance(name, str) or not name.isidentifier() or is_dunder(name):
                raise ValueError(f"tool name {name!r} is not a valid Python identifier")
            if not callable(tool):
                raise TypeError(f"tool {name!r} is not callable (got {type(tool).__name__})")
        self._tools.update(tools)
        self._tool_names = frozenset(self._tools) | {"final_answer"}
        self._code_cache.clear()  # cached steps were checked against the old tool names
        self._install_tools(self._state, tools)

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Put these values into agent code's namespace (they survive a reset of the executor)."""
        for name in variables:
            if not isinstance(name, str) or not name.isidentifier() or is_dunder(name):
                raise ValueError(f"variable name {name!r} is not a valid Python identifier")
        self._variables.update(variables)
        self._state.namespace.update(variables)

    # --- running -------------------------------------------------------------------------------------------------

    def _compile(self, code: str) -> Any:
        cached = self._code_cache.get(code)
        if cached is not None:
            return cached
        tree = check_code(code, self.authorized_imports, defined_names=self._state.namespace.keys())
        refusal = find_tool_rebinding(tree, self._tool_names, code)
        if refusal is not None:
            raise ExecutionError(refusal)
        try:
            compiled = compile(
                instrument(tree),
                AGENT_CODE_FILENAME,
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
        except SyntaxError as err:  # e.g. `return` outside a function: found by the compiler, not the parser
            from ..output import format_syntax_error

            raise ExecutionError(format_syntax_error(err, code)) from None
        except (RecursionError, MemoryError, ValueError) as err:
            raise ExecutionError(f"The code could not be compiled: {type(err).__name__}: {err}") from None
        if len(self._code_cache) >= _CODE_CACHE_SIZE:
            self._code_cache.pop(next(iter(self._code_cache)))
        self._code_cache[code] = compiled
        return compiled

    def run(self, code: str) -> ExecutionResult:
        """Run `code` in the persistent namespace and return its result.

        Raises `ExecutionError` (message for the model, `logs` = what was printed) when the code does not parse,
        breaks the policy, raises, or exceeds the time or memory limit.
        """
        if self._closed:
            raise ExecutionError("This executor is closed; create a new one.")
        with self._run_lock:
            compiled = self._compile(code)
            state = self._state
            state.output[0] = OutputBuffer(self.max_print_outputs_length)
            job = _Job(compiled, code, state, self._step)
            limit = None if self.memory_limit_mb is None else int(self.memory_limit_mb * 1024 * 1024)
            if self.inline and _MAIN_THREAD_TIMER.available():
                _MAIN_THREAD_TIMER.run(job, self.timeout, limit)
                return self._result(job)
            worker = self._ensure_worker()
            tripwire = None if limit is None else MemoryTripwire(limit)
            worker.jobs.put(job)
            finished = self._watch(job, worker, tripwire)
            if not finished:
                self._abandon_worker()
                raise ExecutionError(
                    self._stuck_message(state.control.reason), logs=state.output[0].getvalue()
                )
            return self._result(job)

    def _step(self, job: _Job) -> None:
        """Runs on the worker thread: the agent code, then the rendering of its error, under the limits."""
        control = job.state.control
        with control.lock:
            job.armed = True
        control.allow()
        job.state.gate.enter_step()
        try:
            outcome = eval(job.code, job.state.namespace)
            if job.code.co_flags & _CO_COROUTINE:
                run_on_interruptible_loop(interruptible_loop_factory(control), outcome)
        except FinalAnswerSignal:
            pass
        except BaseException as exc:  # noqa: BLE001 - everything agent code raises becomes an observation
            job.outcome.error = exc
        if control.reason not in ("timeout", "cancelled", "memory", "paused"):
            # rendering may run agent code (__repr__, __str__ of an exception): do it here, under the limits
            control.resume()
            if control.final or job.outcome.error is None:
                value = control.final[0] if control.final else job.state.namespace.get(LAST_VALUE)
                job.state.rendered.clear()
                if value is not None:
                    job.outcome.output_repr = _bounded_repr(value)
                    job.state.rendered[id(value)] = (value, job.outcome.output_repr)
                if not control.final:
                    job.outcome.variables = describe_variables(job.state.namespace, self._tool_names)
            if job.outcome.error is not None and not control.final:
                job.outcome.message = self._describe(job.outcome.error, job.source)
                variables = describe_variables(job.state.namespace, self._tool_names)
                if variables:
                    job.outcome.message += "\n" + variables
        control.stop("done")
        job.state.gate.leave_step()

    def _describe(self, error: BaseException, source: str) -> str:
        if isinstance(error, StepInterrupted):
            return self._interrupted_message(None)
        try:
            rendered = str(error)
        except StepInterrupted:
            rendered = "<its message did not render within the step's time limit>"
        except Exception as render_error:  # noqa: BLE001 - a failing __str__ must not hide the error itself
            rendered = f"<str() of the exception failed: {type(render_error).__name__}>"
        text = format_exception(error, source, message=rendered)
        if isinstance(error, MemoryError) and self.memory_limit_mb is not None:
            text += (
                f"\nA step may grow this process's memory by at most {self.memory_limit_mb} MiB; work on smaller "
                "pieces of data."
            )
        return text

    def _interrupted_message(self, reason: str | None) -> str:
        if reason == "memory":
            return (
                f"MemoryError: the step was stopped: this process's memory grew by more than {self.memory_limit_mb} "
                "MiB while it ran (memory_limit_mb). Variables assigned before the stop are kept: delete large ones "
                "you no longer need (`del name`), and work on smaller pieces of data."
            )
        return (
            f"The step was stopped: its code ran longer than the time limit of {self.timeout:g} seconds (time "
            "spent inside tools is not counted). Variables assigned before the stop are kept. Make the code "
            "faster, or split the work across steps."
        )

    def _stuck_message(self, reason: str | None) -> str:
        exceeded = (
            f"grew this process's memory by more than {self.memory_limit_mb} MiB"
            if reason == "memory"
            else f"exceeded its time limit of {self.timeout:g} seconds"
        )
        return (
            f"The step {exceeded} and could not be stopped, because it was "
            "stuck inside a single native operation (for example a regular expression with catastrophic "
            "backtracking, or arithmetic on enormous numbers). The executor was reset: variables, functions and "
            "imports from earlier steps are lost; tools and variables given by the host are still available."
        )

    def _watch(self, job: _Job, worker: _Worker, tripwire: MemoryTripwire | None) -> bool:
        """Wait for the step; enforce the time and memory limits. False if the worker had to be given up as
        stuck."""
        control = job.state.control
        start = time.monotonic()
        wait = 0.1 if self.timeout is None else min(0.1, self.timeout)
        if tripwire is not None:
            wait = min(wait, MEMORY_CHECK_INTERVAL)
        try:
            while not job.done.wait(wait):
                if tripwire is not None and not control.host_calls and tripwire.tripped():
                    return self._stop(job, worker, "memory")
                if (
                    self.timeout is not None
                    and time.monotonic() - start - control.host_seconds() > self.timeout
                ):
                    return self._stop(job, worker, "timeout")
            return True
        except KeyboardInterrupt:
            if not self._stop(job, worker, "cancelled"):
                self._abandon_worker()
            raise

    def _stop(self, job: _Job, worker: _Worker, reason: str) -> bool:
        control = job.state.control
        control.stop(reason)
        give_up = time.monotonic() + STOP_GRACE_SECONDS
        while not job.done.wait(_INJECT_INTERVAL):
            with control.lock:
                in_tool = control.host_calls > 0
                if job.armed and not in_tool:
                    inject_exception(worker.ident, StepInterrupted)
            if in_tool:
                give_up = time.monotonic() + STOP_GRACE_SECONDS  # a tool is host code: let it return
            elif time.monotonic() > give_up:
                return False
        return True

    def _result(self, job: _Job) -> ExecutionResult:
        control = job.state.control
        stopped_by = control.reason
        control.end()
        namespace = job.state.namespace
        logs = job.state.output[0].getvalue()
        value = namespace.pop(LAST_VALUE, None)
        if control.paused is not None:  # before the final answer: code that swallowed the pause cannot answer
            paused, control.paused = control.paused, None
            if isinstance(paused, ApprovalRequired):
                paused.logs = logs
            raise paused
        if control.final:
            return LocalExecutionResult(control.final[0], logs, True, output_repr=job.outcome.output_repr)
        error = job.outcome.error
        if isinstance(error, KeyboardInterrupt) or stopped_by == "cancelled":
            raise KeyboardInterrupt  # Ctrl-C during a step stops the run, as it would any Python program
        if error is not None:
            message = job.outcome.message
            if message is None:
                message = (
                    self._interrupted_message(stopped_by)
                    if isinstance(error, StepInterrupted) or stopped_by in ("timeout", "cancelled", "memory")
                    else f"{type(error).__name__} (its message could not be rendered within the time limit)"
                )
            raise ExecutionError(message, logs=logs)
        return LocalExecutionResult(
            value, logs, False, variables=job.outcome.variables, output_repr=job.outcome.output_repr
        )

    # --- worker lifecycle ----------------------------------------------------------------------------------------

    def _ensure_worker(self) -> _Worker:
        if self._worker is None or not self._worker.thread.is_alive():
            self._worker = _Worker(f"codeloop-local-executor-{id(self):x}")
            self._finalizer = weakref.finalize(self, self._worker.stop)
        return self._worker

    def _abandon_worker(self) -> None:
        """Leave a stuck worker thread behind (its namespace stays stopped) and start from a fresh namespace."""
        if self._finalizer is not None:
            self._finalizer()
        self._worker = None
        self._finalizer = None
        self._code_cache.clear()
        self._state = self._new_state()

    def close(self) -> None:
        """Drop the namespace on the worker thread (agent code cannot run any more) and stop the worker."""
        if self._closed:
            return
        self._closed = True
        worker, state = self._worker, self._state
        if worker is not None and worker.thread.is_alive():
            done = threading.Event()

            def teardown() -> None:
                state.namespace.clear()
                state.table.clear()
                done.set()

            teardown_job = _Job(None, "", state, lambda job: teardown())
            worker.jobs.put(teardown_job)
            teardown_job.done.wait(STOP_GRACE_SECONDS)
            worker.stop()
            worker.thread.join(STOP_GRACE_SECONDS)
        else:
            state.namespace.clear()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._worker = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _make_unrendered(rendered: dict[int, tuple[Any, str]]) -> Callable[[Any], str]:
    def unrendered(obj: Any) -> str:
        entry = rendered.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        return object.__repr__(obj)  # no agent code: the type's name and the address

    return unrendered


def _bounded_repr(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else repr(value)
    except StepInterrupted:
        return "<repr() did not finish within the step's time limit>"
    except Exception as exc:  # noqa: BLE001 - a failing __repr__ must not hide the value itself
        return f"<repr() failed: {type(exc).__name__}>"
    if not isinstance(text, str):
        return f"<repr() returned {type(text).__name__}, not str>"
    return truncate_output(text, _REPR_LIMIT)


def _make_emit(
    output: list[OutputBuffer], hook: list[Callable[[str], Any] | None], control: StepControl
) -> Callable[[str], None]:
    """Text agent code prints: into the step's captured output, and to `on_output` as it comes."""

    def emit(text: str) -> None:
        output[0].write(text)
        callback = hook[0]
        if callback is not None:
            control.host_call(callback, text)  # host code: not interrupted, its time not counted

    return emit


def _make_print(emit: Callable[[str], None]) -> Callable[..., None]:
    real_print = builtins.print

    def print(
        *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:  # noqa: A001
        """Print into the step's captured output (or to `file`, if one is given)."""
        if file is not None:
            real_print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        if sep is None:
            sep = " "
        elif not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        if end is None:
            end = "\n"
        elif not isinstance(end, str):
            raise TypeError(f"end must be None or a string, not {type(end).__name__}")
        emit(sep.join([str(arg) for arg in args]) + end)

    return print


def _make_final_answer(control: StepControl, tool: Any) -> Callable[..., None]:
    def final_answer(answer: Any = None) -> None:
        """End the run with `answer` (any Python object) as its result."""
        if tool is not None:
            answer = control.host_call(tool, answer)
        control.final[:] = [answer]
        control.stop("final")
        raise FinalAnswerSignal

    return final_answer


def _make_tool(control: StepControl, name: str, tool: Any) -> Callable[..., Any]:
    def tool_call(*args: Any, **kwargs: Any) -> Any:
        try:
            return control.host_call(tool, *args, **kwargs)
        except ApprovalRequired as signal:
            control.pause(signal)  # the code's own `except` cannot carry on past the call: the step is over
            raise

    tool_call.__name__ = tool_call.__qualname__ = name
    description = getattr(tool, "description", None)
    tool_call.__doc__ = description if isinstance(description, str) else getattr(tool, "__doc__", None)
    return tool_call
