"""The host side of the worker protocol: an `Executor` that drives a Python worker in another process or machine.

`WorkerExecutor` speaks the protocol of `codeloop.executors.worker.guest` over a `Channel` (two byte streams plus
a way to kill the other end). The sandbox, Docker, E2B and Modal executors are this class with different channels:
tools always run here on the host, with the host's credentials and network, called by the sandboxed code through
``call`` messages; the sandbox never holds a tool's code or a secret.

Everything the worker sends is untrusted. Messages are size-limited lines of JSON, values are decoded with the
safe format only (never unpickled), a worker that breaks the protocol is killed, and no message can make the host
wait past the step's time limit. When the worker times out, dies or misbehaves, the step fails with an observation
that says so, the worker is discarded, and the next step starts a fresh one with the same tools and host-given
variables (the variables the code itself created are lost, and the message says that too).
"""

from __future__ import annotations

import binascii
import dataclasses
import logging
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from ... import telemetry
from ..._checks import check_limit
from ...approval import ApprovalRequired
from ...errors import ExecutionError, SandboxUnavailableError
from ..base import ExecutionResult
from ..files import FileListing, WorkdirFiles
from ..output import OutputBuffer
from . import protocol as wire
from .bundle import worker_bundle
from .channels import Channel
from .workdir import DEFAULT_MAX_FILES, MAX_CHUNK_BYTES, check_relative

__all__ = ["standard_init", "WorkerExecutor", "WorkerStartError", "Connection"]

logger = logging.getLogger(__name__)


class WorkerStartError(SandboxUnavailableError):
    """The worker process could not be started or did not complete the protocol handshake."""


class _WorkerGone(Exception):
    """The worker's stream ended: it exited, crashed or was killed."""


class _ProtocolViolation(Exception):
    """The worker sent something that is not a valid message at this point."""


def standard_init(
    hello: dict[str, Any],
    *,
    cwd: str | None,
    max_memory_mb: int | None,
    output_limit: int,
    site_dirs: Sequence[str] = (),
    rlimits: Mapping[str, list[int | None]] | None = None,
    die_with_parent: bool = False,
) -> dict[str, Any]:
    """The ``init`` message most executors send: limits, the seccomp filter for the worker's machine, paths."""
    from .seccomp import build_filter

    limits: dict[str, list[int | None]] = {"RLIMIT_CORE": [0, 0]}
    if max_memory_mb is not None:
        limits["RLIMIT_AS"] = [max_memory_mb * 2**20, max_memory_mb * 2**20]
    limits.update(rlimits or {})
    program = build_filter(str(hello.get("machine", "")))
    return {
        "op": "init",
        "cwd": cwd,
        "site_dirs": list(site_dirs),
        "rlimits": limits,
        "seccomp": None if program is None else wire.encode_value(program)["v"],
        "die_with_parent": die_with_parent,
        "output_limit": output_limit,
        "stream_limit": max(10 * output_limit, 100_000),
        "flush_interval": 0.05,
    }


# --- the executor -----------------------------------------------------------------------------------------------


class Connection:
    """Message framing over a channel: size-limited lines in, JSON lines out."""

    def __init__(self, channel: Channel, max_bytes: int) -> None:
        self.channel = channel
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.scanned = 0

    def send(self, message: dict[str, Any], deadline: float | None) -> None:
        self.send_raw(wire.dump_message(message), deadline)

    def send_raw(self, data: bytes, deadline: float | None) -> None:
        self.channel.send(data, _remaining(deadline))

    def receive(self, deadline: float | None) -> dict[str, Any]:
        while True:
            newline = self.buffer.find(b"\n", self.scanned)
            if newline >= 0:
                line = bytes(self.buffer[: newline + 1])
                del self.buffer[: newline + 1]
                self.scanned = 0
                try:
                    return wire.load_message(line)
                except wire.WireError as exc:
                    raise _ProtocolViolation(str(exc)) from None
            self.scanned = len(self.buffer)
            if len(self.buffer) > self.max_bytes:
                raise _ProtocolViolation(f"a message over {self.max_bytes // 2**20} MiB")
            chunk = self.channel.receive(_remaining(deadline))
            if not chunk:
                raise _WorkerGone()
            self.buffer += chunk


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or _is_dunder(name):
        raise ValueError(f"{kind} name {name!r} is not a valid Python identifier")


_LOST = (
    "variables, functions and imports from earlier steps are lost; tools and variables given by the host are "
    "still available"
)


class WorkerExecutor(WorkdirFiles, ABC):
    """An `Executor` whose code runs in a worker reached through a `Channel`; subclasses provide the channel.

    Args:
        timeout: Wall-clock seconds a step's code may run (time inside host tools is not counted); None for none.
        max_print_outputs_length: Printed output kept per step (head and tail beyond it, with a note).
        on_output: Called with each chunk of printed text as the code prints it (streamed, ~20 times a second).
        max_message_mb: Largest single message between the host and the worker, in MiB (a tool's result or
            arguments, a value, the variables sent): a larger one is refused with an error that gives its size
            and this limit; the worker and its variables are kept.
        startup_timeout: Seconds to wait for a new worker to be ready.
    """

    bundle_kind = "source"
    """How the worker code is sent: "source", or "marshal" when the worker's interpreter is this one."""

    def __init__(
        self,
        *,
        timeout: float | None = 30.0,
        max_print_outputs_length: int = 50_000,
        on_output: Callable[[str], None] | None = None,
        max_message_mb: int = 64,
        startup_timeout: float = 30.0,
    ) -> None:
        check_limit("timeout", timeout)
        check_limit(
            "max_print_outputs_length",
            max_print_outputs_length,
            integer=True,
            allow_zero=True,
            optional=False,
        )
        check_limit("max_message_mb", max_message_mb, integer=True, optional=False)
        check_limit("startup_timeout", startup_timeout, optional=False)
        self.timeout = timeout
        self.max_print_outputs_length = max_print_outputs_length
        self.on_output = on_output
        self.max_message_bytes = max_message_mb * 2**20
        self.startup_timeout = startup_timeout
        self.worker_info: dict[str, Any] = {}
        self._tools: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._connection: Connection | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._step = 0
        self._final: tuple[Any] | None = None
        self._paused: ApprovalRequired | None = None
        self._tool_seconds = 0.0
        self._trace_sent: dict[str, str] | None = None
        self._lost_note: str | None = None
        self.restarts = 0

    # --- hooks for subclasses ------------------------------------------------------------------------------------

    @abstractmethod
    def _open_channel(self) -> Channel:
        """Start a worker process (running `BOOTSTRAP`) and return the channel to it."""

    def _init_message(self, hello: dict[str, Any]) -> dict[str, Any]:
        """The ``init`` message for this worker (limits, filter, paths), given its ``hello``."""
        return {"op": "init"}

    def _on_ready(self, ready: dict[str, Any]) -> None:  # noqa: B027 - an optional hook; accepting is the default
        """Inspect the worker's ``ready`` report; raise to refuse the worker."""

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def _connect(self) -> Connection:
        if self._closed:
            raise ExecutionError("This executor is closed; create a new one.")
        if self._connection is not None:
            return self._connection
        connection = self._open_connection()
        self._finalizer = weakref.finalize(self, connection.channel.close)
        deadline = time.monotonic() + self.startup_timeout
        try:
            self.worker_info = self._handshake(connection, deadline)
            self._on_ready(self.worker_info)
            self._connection = connection
            if self._tools:
                self._push_tools(self._tools, deadline)
            if self._variables:
                self._push_variables(self._variables, deadline)
        except (_WorkerGone, _ProtocolViolation, TimeoutError, BrokenPipeError, OSError) as exc:
            self._connection = connection
            detail = self._death_detail(connection, exc)
            self._discard()
            raise WorkerStartError(f"The code worker could not start: {detail}") from None
        except BaseException:
            self._connection = connection
            self._discard()
            raise
        return connection

    def _open_connection(self) -> Connection:
        """A connection to a new worker process (not yet set up: see `_handshake`)."""
        try:
            channel = self._open_channel()
        except OSError as exc:
            raise WorkerStartError(f"The code worker could not be started: {exc}") from None
        return Connection(channel, self.max_message_bytes)

    def _bundle(self) -> bytes | None:
        """The worker's code to send first, or None when the other end already runs it (a forked worker)."""
        return worker_bundle(self.bundle_kind)

    def _handshake(self, connection: Connection, deadline: float) -> dict[str, Any]:
        """Bring a new worker to ``ready``: send its code, answer its ``hello`` with ``init``; both replies merged."""
        bundle = self._bundle()
        if bundle is not None:
            connection.send_raw(bundle, deadline)
        hello = connection.receive(deadline)
        if hello.get("op") != "hello" or hello.get("protocol") != wire.PROTOCOL_VERSION:
            raise _ProtocolViolation(f"expected hello for protocol {wire.PROTOCOL_VERSION}, got {hello}")
        connection.send({**self._init_message(hello), "max_message_bytes": self.max_message_bytes}, deadline)
        ready = connection.receive(deadline)
        if ready.get("op") != "ready":
            raise _ProtocolViolation(f"expected ready, got {ready.get('op')!r}")
        return {**hello, **ready}

    def _discard(self) -> None:
        """Kill the current worker (if any); the next step starts a fresh one."""
        connection, self._connection = self._connection, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if connection is not None:
            connection.channel.close()
            self.restarts += 1

    def close(self) -> None:
        """Kill the worker and forget its state. Safe to call twice, and from another thread to stop a step."""
        self._closed = True
        connection = self._connection
        if connection is not None:
            connection.channel.close()  # unblocks a step running in another thread
        with self._lock:
            self._discard()

    def __enter__(self) -> WorkerExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- tools and variables -------------------------------------------------------------------------------------

    def send_tools(self, tools: dict[str, Any]) -> None:
        """Make these host callables (functions, `Tool`s, managed agents) callable from the code by name.

        The code gets a stub that sends the arguments to the host; the tool runs here and its result is sent
        back. A `final_answer` tool, if given, is applied to the answer on the host.
        """
        for name, tool in tools.items():
            _check_name("tool", name)
            if not callable(tool):
                raise TypeError(f"tool {name!r} is not callable (got {type(tool).__name__})")
        with self._lock:
            self._tools.update(tools)
            if self._connection is not None:
                self._guarded(lambda: self._push_tools(tools, time.monotonic() + self.startup_timeout))

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Put copies of these values into the code's namespace (they survive a restart of the worker).

        Values go in the safe format, or pickled when they need to (the worker may unpickle; the host never does).
        Starts the worker if it is not running, and raises `TypeError` naming every value it could not rebuild
        (e.g. an instance of a class that exists only on the host); the other values are delivered.
        """
        for name in variables:
            _check_name("variable", name)
        for name, value in variables.items():
            try:
                size = len(wire.dump_message({"v": wire.encode_value(value, allow_pickle=True)}))
            except wire.WireError as exc:
                raise TypeError(f"variable {name!r} cannot be sent to the worker: {exc}") from None
            if size > self.max_message_bytes:
                raise wire.MessageTooLarge(wire.too_large(f"variable {name!r}", size, self.max_message_bytes))
        with self._lock:
            # The worker starts now if it has not yet: whether a value can be rebuilt inside it is known only
            # there, and a variable that cannot must be refused here, not dropped silently at the first step.
            self._connect()
            failed: dict[str, str] = {}
            self._guarded(
                lambda: failed.update(
                    self._push_variables(variables, time.monotonic() + self.startup_timeout)
                )
            )
            self._variables.update({name: value for name, value in variables.items() if name not in failed})
            if failed:
                details = "; ".join(f"variable {name!r}: {error}" for name, error in sorted(failed.items()))
                raise TypeError(
                    f"could not be rebuilt inside the worker ({details}); the worker has only the standard library "
                    "and the installed packages, so send plain data (dicts, lists, str, numbers) instead"
                )

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (_WorkerGone, _ProtocolViolation, TimeoutError, BrokenPipeError, OSError) as exc:
            connection = self._connection
            detail = self._death_detail(connection, exc) if connection is not None else type(exc).__name__
            self._discard()  # the next step starts a fresh worker, which gets everything again
            self._note_lost_state(detail.splitlines()[0])

    def _note_lost_state(self, why: str) -> None:
        """Remember to tell the next step that a worker holding the code's state was replaced between steps."""
        if self._step > 0:
            self._lost_note = f"Before this step the worker stopped ({why}) and was restarted: {_LOST}."

    def _push_tools(self, tools: dict[str, Any], deadline: float) -> None:
        connection = self._connect_for_push()
        specs = []
        for name, tool in tools.items():
            description = getattr(tool, "description", None)
            doc = description if isinstance(description, str) else getattr(tool, "__doc__", None)
            specs.append({"name": name, "doc": doc if isinstance(doc, str) else None})
        connection.send({"op": "tools", "tools": specs}, deadline)
        self._expect(connection, "ok", deadline)

    def _push_variables(self, variables: dict[str, Any], deadline: float) -> dict[str, str]:
        """Send variables; return {name: error} for those the worker could not rebuild."""
        connection = self._connect_for_push()
        failed: dict[str, str] = {}
        for batch in self._batches(variables):
            connection.send_raw(batch, deadline)
            reply = self._expect(connection, "ok", deadline)
            names = reply.get("failed")
            failed.update({str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {})
        return failed

    def _batches(self, variables: dict[str, Any]) -> list[bytes]:
        """``vars`` messages under the size limit (each variable alone fits: `send_variables` checked it)."""
        batches: list[bytes] = []
        pending: dict[str, Any] = {}
        pending_size = 0
        for name, value in variables.items():
            item = wire.encode_value(value, allow_pickle=True)
            size = len(
                wire.dump_message({"op": "vars", "v": {name: item}})
            )  # the sum bounds the batch's size
            if pending and pending_size + size > self.max_message_bytes:
                batches.append(wire.dump_message({"op": "vars", "v": pending}))
                pending, pending_size = {}, 0
            pending[name] = item
            pending_size += size
        if pending:
            batches.append(wire.dump_message({"op": "vars", "v": pending}))
        return batches

    def _connect_for_push(self) -> Connection:
        assert self._connection is not None
        return self._connection

    def _expect(self, connection: Connection, op: str, deadline: float | None) -> dict[str, Any]:
        while True:
            message = connection.receive(deadline)
            kind = message["op"]
            if kind == op:
                return message
            if kind == "out":
                continue  # late output of a thread left over from an earlier step
            if kind in ("call", "final"):
                self._answer_call(connection, message, lambda: deadline)
                continue
            raise _ProtocolViolation(f"expected {op!r}, got {kind!r}")

    def get_variables(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Copies of variables from the code's namespace (all plain ones if `names` is None).

        A value the safe format cannot carry comes back as an `OpaqueValue` holding its type and repr.
        """
        with self._lock:
            connection = self._connect()
            deadline = time.monotonic() + self.startup_timeout
            try:
                connection.send({"op": "get", "names": None if names is None else list(names)}, deadline)
                reply = self._expect(connection, "values", deadline)
                values = reply.get("v")
                if not isinstance(values, dict):
                    raise _ProtocolViolation("values without a mapping")
                refused = reply.get("error")
            except (_WorkerGone, _ProtocolViolation, TimeoutError, BrokenPipeError) as exc:
                detail = self._death_detail(connection, exc)
                self._discard()
                self._note_lost_state(detail.splitlines()[0] if detail else "it stopped answering")
                raise ExecutionError(f"Could not read variables from the worker: {detail}") from None
            if isinstance(refused, str):  # e.g. over the size limit; the worker is fine
                raise ExecutionError(refused)
            try:
                return {str(name): wire.decode_value(data) for name, data in values.items()}
            except (
                wire.WireError
            ) as exc:  # the worker is fine; this host cannot rebuild a value (or it is forged)
                raise ExecutionError(f"Could not read variables from the worker: {exc}") from None

    # --- files in the worker's working directory ----------------------------------------------------------------

    def list_files(self, max_files: int = DEFAULT_MAX_FILES) -> FileListing:
        """The regular files in the worker's working directory (at most `max_files`; starts a worker if none)."""
        check_limit("max_files", max_files, integer=True, optional=False)
        reply = self._ask({"op": "files", "max_files": max_files}, "listing", "list the working directory")
        if isinstance(reply.get("error"), str):
            raise ExecutionError(f"Could not list the working directory: {reply['error']}")
        return FileListing.from_rows(reply.get("files"), reply.get("truncated"))

    def _read_chunk(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        relative = check_relative(path)
        reply = self._ask(
            {"op": "read", "path": relative, "offset": offset, "length": length}, "chunk", f"read {relative}"
        )
        if isinstance(reply.get("error"), str):
            raise ValueError(reply["error"])
        data, size = reply.get("data"), reply.get("size")
        try:
            chunk = binascii.a2b_base64(data.encode("ascii")) if isinstance(data, str) else b""
        except (binascii.Error, UnicodeEncodeError):
            chunk = None
        if chunk is None or not isinstance(size, int) or size < 0 or len(chunk) > length:
            self._discard()  # the worker is not following the protocol
            raise ExecutionError(f"The worker sent a malformed chunk of {relative} and was stopped.")
        return chunk, size

    def _chunk_bytes(self) -> int:
        # base64 makes a chunk a third larger; keep each reply well inside the message limit
        return max(1, min(MAX_CHUNK_BYTES, (self.max_message_bytes - 4096) * 3 // 4))

    def _ask(self, message: dict[str, Any], op: str, what: str) -> dict[str, Any]:
        """Send `message` between steps and return the worker's `op` reply; a dead worker is discarded."""
        with self._lock:
            connection = self._connect()
            deadline = time.monotonic() + self.startup_timeout
            try:
                connection.send(message, deadline)
                return self._expect(connection, op, deadline)
            except (_WorkerGone, _ProtocolViolation, TimeoutError, BrokenPipeError) as exc:
                detail = self._death_detail(connection, exc)
                self._discard()
                self._note_lost_state(detail.splitlines()[0] if detail else "it stopped answering")
                raise ExecutionError(f"Could not {what} in the worker: {detail}") from None

    # --- running code --------------------------------------------------------------------------------------------

    def run(self, code: str) -> ExecutionResult:
        """Run `code` in the worker's persistent namespace and return its result.

        Raises `ExecutionError` (message for the model, `logs` = what was printed) when the code does not parse,
        raises, runs past the time limit, or kills its worker.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        with self._lock:
            note, self._lost_note = self._lost_note, None
            try:
                result = self._run_step(code)
            except ExecutionError as exc:
                if note:
                    raise ExecutionError(f"{note}\n{exc}", logs=exc.logs) from None
                raise
            if note:
                return dataclasses.replace(result, logs=f"[{note}]\n{result.logs}")
            return result

    def _run_step(self, code: str) -> ExecutionResult:
        with self._lock:
            connection = self._connect()
            self._step += 1
            step = self._step
            self._final = None
            self._paused = None
            self._tool_seconds = 0.0
            streamed = OutputBuffer(self.max_print_outputs_length)
            stray = getattr(connection.channel, "take_stray_output", None)
            if stray is not None:
                stray()  # whatever leftover threads wrote between steps does not belong to this step
            started = time.monotonic()
            # The trace context goes with the step and comes back with each tool call, so tool spans nest under it.
            self._trace_sent = telemetry.trace_carrier()
            trace = {"trace": self._trace_sent} if self._trace_sent else {}
            request = wire.dump_message(
                {"op": "run", "id": step, "code": code, **self._run_options(), **trace}
            )
            if len(request) > self.max_message_bytes:
                raise ExecutionError(wire.too_large("the code", len(request), self.max_message_bytes))
            try:
                connection.send_raw(request, self._deadline(started))
                while True:
                    message = connection.receive(self._deadline(started))
                    kind = message["op"]
                    if kind == "out":
                        self._emit(_text(message.get("text")), streamed)
                    elif kind in ("call", "final"):
                        self._answer_call(connection, message, lambda: self._deadline(started))
                    elif kind in ("done", "error") and message.get("id") == step:
                        break
                    else:
                        raise _ProtocolViolation(f"unexpected {kind!r} message during a step")
            except TimeoutError:
                self._discard()
                raise ExecutionError(self._timeout_message(), logs=streamed.getvalue()) from None
            except (_WorkerGone, BrokenPipeError) as exc:
                detail = self._death_detail(connection, exc)
                self._discard()
                raise ExecutionError(self._death_message(detail), logs=streamed.getvalue()) from None
            except (_ProtocolViolation, wire.WireError) as exc:
                self._discard()
                raise ExecutionError(
                    f"The worker broke the protocol ({exc}) and was stopped. The next step runs in a fresh "
                    f"worker: {_LOST}.",
                    logs=streamed.getvalue(),
                ) from None
            except BaseException:
                self._discard()  # Ctrl-C or a failing callback: never leave a step running unattended
                raise
            paused, self._paused = self._paused, None
            if (
                paused is not None
            ):  # a tool asked to pause: the step ends here, the worker keeps its variables
                if _text(message.get("restart")):
                    self._discard()
                paused.logs = _text(message.get("logs"))
                raise paused
            # Outside the try above: a step whose code failed ends with an ExecutionError from here, and that is
            # an ordinary outcome that keeps the worker and its variables, as CPython does.
            return self._finish(connection, message)

    def _run_options(self) -> dict[str, Any]:
        return {}

    def _deadline(self, started: float) -> float | None:
        if self.timeout is None:
            return None
        return started + self.timeout + self._tool_seconds

    def _emit(self, text: str, streamed: OutputBuffer) -> None:
        if not text:
            return
        streamed.write(text)
        if self.on_output is not None:
            try:
                self.on_output(text)
            except Exception:
                logger.exception("on_output callback failed; output streaming continues")

    def _finish(self, connection: Connection, message: dict[str, Any]) -> ExecutionResult:
        rest = _text(message.get("rest"))
        if rest and self.on_output is not None:
            self._emit(rest, OutputBuffer(0))
        logs = _text(message.get("logs"))
        stray = getattr(connection.channel, "take_stray_output", None)
        if stray is not None:
            extra = stray()
            if extra:
                logs += extra
        restart = _text(message.get("restart"))
        note = f"{restart} The next step runs in a fresh worker: {_LOST}." if restart else ""
        if restart:
            self._discard()
        if message["op"] == "error":
            text = _text(message.get("message")) or "The code failed."
            raise ExecutionError(f"{text}\n{note}" if note else text, logs=logs)
        if note:
            logs += f"\n[{note}]"
        if message.get("final"):
            if self._final is None:
                self._discard()
                raise ExecutionError(
                    "The worker broke the protocol (a final step without a final answer) and was stopped. The next "
                    f"step runs in a fresh worker: {_LOST}.",
                    logs=logs,
                )
            return ExecutionResult(self._final[0], logs, True)
        value = message.get("value")
        try:
            decoded = None if value is None else wire.decode_value(value)
        except wire.WireError as exc:
            # The worker is fine; only this value cannot be rebuilt here (e.g. pandas is missing on the host).
            raise ExecutionError(
                f"The code ran, but the value of its last expression could not be read on the host: {exc}. "
                "Variables are kept; print the value or convert it (e.g. str(), .tolist()) instead.",
                logs=logs,
            ) from None
        return ExecutionResult(decoded, logs, False, variables=_text(message.get("variables")))

    def _answer_call(
        self, connection: Connection, message: dict[str, Any], deadline: Callable[[], float | None]
    ) -> None:
        """Run a tool (or the final answer) the code asked for, here on the host, and send back the outcome.

        `deadline()` is asked after the tool has run (tool time extends a step's deadline), so a worker that asks
        for a large result and then stops reading cannot hold the host past the step's limit.
        """
        started = time.monotonic()
        try:
            reply = self._call_tool(message)
        finally:
            self._tool_seconds += time.monotonic() - started
        try:
            data = wire.dump_message(reply)
        except (ValueError, TypeError) as exc:
            data = wire.dump_message(_raise_reply(TypeError(f"the tool's result could not be sent: {exc}")))
        if len(data) > self.max_message_bytes:
            # Refused here, as an exception in the calling code: the worker (and its variables) stay intact.
            what = (
                "the final answer"
                if message["op"] == "final"
                else f"the result of tool {message.get('tool')!r}"
            )
            text = wire.too_large(what, len(data), self.max_message_bytes)
            logger.warning("%s", text)
            data = wire.dump_message(_raise_reply(wire.MessageTooLarge(text)))
        connection.send_raw(data, deadline())

    def _call_tool(self, message: dict[str, Any]) -> dict[str, Any]:
        if (
            self._paused is not None
        ):  # code that caught the pause may not call tools or answer: the step is over
            return {"op": "pause", "message": str(self._paused)}
        if message["op"] == "final":
            try:
                answer = wire.decode_value(message.get("v"))
            except wire.WireError as exc:
                raise _ProtocolViolation(f"undecodable final answer: {exc}") from None
            tool = self._tools.get("final_answer")
            if tool is not None:
                try:
                    answer = tool(answer)
                except Exception as exc:
                    return _raise_reply(exc)
            self._final = (answer,)
            return {"op": "return", "v": None}
        name = message.get("tool")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None or name == "final_answer":
            return _raise_reply(NameError(f"no tool named {name!r}"))
        try:
            args = wire.decode_value(message.get("args"))
            kwargs = wire.decode_value(message.get("kwargs"))
        except wire.WireError as exc:
            return _raise_reply(TypeError(f"the arguments for tool {name!r} could not be decoded: {exc}"))
        if (
            not isinstance(args, list)
            or not isinstance(kwargs, dict)
            or not all(isinstance(k, str) for k in kwargs)
        ):
            return _raise_reply(TypeError(f"malformed arguments for tool {name!r}"))
        try:
            with telemetry.remote_parent(message.get("trace"), self._trace_sent):
                result = tool(*args, **kwargs)
        except ApprovalRequired as signal:
            self._paused = signal
            return {"op": "pause", "message": str(signal)}
        except Exception as exc:
            return _raise_reply(exc)
        try:
            return {"op": "return", "v": wire.encode_value(result, allow_pickle=True)}
        except wire.WireError as exc:
            return _raise_reply(
                TypeError(f"tool {name!r} returned a value that cannot be sent to the code: {exc}")
            )

    # --- messages for the model ----------------------------------------------------------------------------------

    def _death_detail(self, connection: Connection, exc: BaseException) -> str:
        """Why the worker is gone (its exit status) and its last words on stderr; closes the channel."""
        channel = connection.channel
        reason = channel.exit_reason() if isinstance(exc, (_WorkerGone, BrokenPipeError)) else None
        tail = _last_lines(
            channel.diagnostics(), 12
        )  # read before closing: the pipe still holds the last words
        channel.close()
        detail = reason or (str(exc) or type(exc).__name__)
        return f"{detail}\n{tail}" if tail else detail

    def _timeout_message(self) -> str:
        return (
            f"The step was stopped: its code ran longer than the time limit of {self.timeout:g} seconds (time spent "
            f"inside tools is not counted). The worker was restarted: {_LOST}. Make the code faster, or split the "
            "work across steps."
        )

    def _death_message(self, detail: str) -> str:
        hint = ""
        if "SIGSEGV" in detail:
            hint = (
                " This usually means unbounded recursion through C code (e.g. after sys.setrecursionlimit)."
            )
        elif "SIGKILL" in detail:
            hint = " This usually means it ran out of memory."
        elif "SIGXCPU" in detail:
            hint = " It used up its CPU-time budget."
        return f"The worker running the code died ({detail}).{hint} The next step runs in a fresh worker: {_LOST}."


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _last_lines(text: str, count: int) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def _raise_reply(exc: BaseException) -> dict[str, Any]:
    reply: dict[str, Any] = {"op": "raise", "etype": type(exc).__name__, "message": _safe_str(exc)}
    try:
        import pickle

        blob = pickle.dumps(exc)
        reply["pickle"] = wire.encode_value(blob)["v"]
    except Exception:  # unpicklable exception: the worker rebuilds it from its type name and message
        pass
    return reply


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return type(exc).__name__
