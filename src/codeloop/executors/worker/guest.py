"""The worker side of the protocol (the guest): a persistent Python namespace driven over stdin/stdout.

This module runs *inside* the sandbox. The host starts a bare interpreter (`python -I -S -c BOOTSTRAP`) and sends
this module's code, together with `protocol` (the message and value formats) and `output` (shaping printed text
and errors for the model), over stdin; they are installed as `codeloop_sandbox_*` modules and `main` is called.
It imports only the standard library, so the sandbox needs no copy of codeloop, of the tools, or of any secret.

Life of the worker:
  1. says ``hello`` (protocol version, Python version, machine);
  2. receives ``init``: site-packages to add, resource limits, the seccomp filter; applies them, says ``ready``;
  3. serves ``tools``, ``vars``, ``get``, ``run``, ``files`` and ``read`` messages until stdin closes or ``exit``
     arrives (``files`` lists the working directory's files, ``read`` returns a chunk of one: `workdir`).

While code runs, `print` output streams to the host as ``out`` messages (at most one every `flush_interval`
seconds, so a tight loop of prints costs nothing extra), tool calls go to the host as ``call`` messages and block
until the host answers, and the step ends with ``done`` or ``error``. Everything the worker sends is in the safe
value format; the host treats every byte as untrusted.
"""

from __future__ import annotations

import _ast
import _thread
import binascii
import builtins
import codecs
import io
import os
import sys
import time

TYPE_CHECKING = (
    False  # typing and collections.abc are slow to import; the sandbox imports this on every start
)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

try:
    from .. import output as shaping
    from . import limits, workdir
    from . import protocol as wire
except ImportError:  # loaded by the sandbox bootstrap as top-level modules, outside any package
    import codeloop_sandbox_limits as limits  # type: ignore[import-not-found,no-redef]
    import codeloop_sandbox_output as shaping  # type: ignore[import-not-found,no-redef]
    import codeloop_sandbox_protocol as wire  # type: ignore[import-not-found,no-redef]
    import codeloop_sandbox_workdir as workdir  # type: ignore[import-not-found,no-redef]

__all__ = ["main", "FinalAnswerSignal"]

_CO_COROUTINE = 0x0080
_LAST_VALUE = "__codeloop_last_value__"
_CODE_CACHE_SIZE = 128
_STREAM_CHUNK = 8192
_BUSY_SAMPLE_SECONDS = 0.05
_BUSY_FRACTION = (
    0.2  # blocked or sleeping threads use no CPU; a spinning one gets far more, even on a busy host
)
_OTHER_THREADS_CPU = 0.005
_BUSY_MAX_SLICES = 20  # a second at most, and only while other threads keep using the CPU
_IDLE_SLICE_CPU = 0.0005
_SLOW_COLLECTION_SECONDS = 0.00025
_SLOW_COLLECTION_SKIPS = 10


_WHAT_IS_SENT = {
    "call": "the arguments of this tool call",
    "final": "the final answer",
    "done": "the value of the last expression",
    "values": "the variables asked for",
}


class FinalAnswerSignal(BaseException):
    """Raised by `final_answer` to end the step; a BaseException so `except Exception` cannot swallow it."""


class StepPaused(BaseException):
    """The host paused the step at a tool call (it awaits a person's approval); a BaseException so that
    `except Exception` cannot swallow it. The host refuses every later call of the step, so catching it gains nothing."""


class _Refused(Exception):
    """The step's code breaks a rule checked before it runs; the message is for the model."""


class _ProtocolBroken(Exception):
    """The host went away or sent something that is not a message: the worker exits."""


class _Channel:
    """The worker's end of the protocol: reads lines from the host, writes lines back, one writer at a time."""

    def __init__(self, reader: BinaryIO, out_fd: int, max_bytes: int) -> None:
        self.reader = reader
        self.out_fd = out_fd
        self.max_bytes = max_bytes
        self.send_lock = _thread.allocate_lock()
        self.call_lock = _thread.RLock()

    def send(self, message: dict[str, Any]) -> None:
        data = wire.dump_message(message)
        if len(data) > self.max_bytes:
            raise wire.MessageTooLarge(
                wire.too_large(_WHAT_IS_SENT.get(message["op"], "the data"), len(data), self.max_bytes)
            )
        view = memoryview(data)
        with self.send_lock:
            while view:
                written = os.write(self.out_fd, view)
                view = view[written:]

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline(self.max_bytes + 1)
        if not line:
            raise _ProtocolBroken("the host closed the channel")
        if not line.endswith(b"\n"):  # the host checks sizes before sending, so this is a broken channel
            raise _ProtocolBroken(f"a message from the host over {self.max_bytes} bytes, or truncated")
        try:
            return wire.load_message(line)
        except wire.WireError as exc:
            raise _ProtocolBroken(str(exc)) from None


class _BinaryCapture(io.BufferedIOBase):
    """`sys.stdout.buffer` (and `sys.stderr.buffer`) in the sandbox: bytes written here join the printed text,
    decoded as UTF-8 (a character split across writes is kept whole; invalid bytes show as escapes)."""

    def __init__(self, text: _Capture) -> None:
        super().__init__()
        self.text = text
        self.decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        chunk = bytes(memoryview(data))  # what `BufferedWriter.write` accepts: any bytes-like object
        decoded = self.decoder.decode(chunk)
        if decoded:
            self.text.write(decoded)
        return len(chunk)

    def flush(self) -> None:
        """Text is streamed on the capture's schedule; an explicit flush changes nothing."""

    def end_step(self) -> None:
        """Write out a partial character left at the end of a step (as escapes) and start afresh."""
        rest = self.decoder.decode(b"", final=True)
        self.decoder.reset()
        if rest:
            self.text.write(rest)


class _Capture(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: keeps the step's output (bounded) and streams it to the host."""

    def __init__(self, channel: _Channel, limit: int, stream_limit: int, interval: float) -> None:
        super().__init__()
        self.channel = channel
        self.limit = limit
        self.stream_limit = stream_limit
        self.interval = interval
        self.lock = _thread.allocate_lock()
        self.kept = shaping.OutputBuffer(limit)
        self.pending: list[str] = []
        self.pending_len = 0
        self.streamed = 0
        # Held while there is nothing to stream; a write releases it to wake the flusher. (The worker uses _thread
        # rather than threading: importing threading costs ~3 ms of every start.)
        self.wake = _thread.allocate_lock()
        self.wake.acquire()
        self.flusher_started = False
        self.buffer = _BinaryCapture(self)

    def begin(self) -> None:
        with self.lock:
            self.kept = shaping.OutputBuffer(self.limit)
            self.pending.clear()
            self.pending_len = 0
            self.streamed = 0

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self.lock:
            self.kept.write(text)
            room = self.stream_limit - self.streamed - self.pending_len
            if room > 0:
                part = text if len(text) <= room else text[:room]
                self.pending.append(part)
                self.pending_len += len(part)
                if self.pending_len >= _STREAM_CHUNK:
                    self._flush_locked()
                elif self.wake.locked():
                    self.wake.release()
        return len(text)

    def flush(self) -> None:
        """Output is streamed on the flusher's schedule; an explicit flush changes nothing."""

    def start(self) -> None:
        """Start the thread that streams pending output; it sleeps until there is some."""
        if not self.flusher_started:
            self.flusher_started = True
            _thread.start_new_thread(self._flush_loop, ())

    def _flush_loop(self) -> None:
        while True:
            self.wake.acquire()  # returns once a write released it; held again until the next write
            time.sleep(self.interval)
            with self.lock:
                try:
                    self._flush_locked()
                except Exception:  # the host is gone; the main loop will notice
                    return

    def _flush_locked(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        self.pending_len = 0
        self.streamed += len(text)
        self.channel.send({"op": "out", "text": text})

    def flush_stream(self) -> None:
        with self.lock:
            self._flush_locked()

    def finish(self) -> tuple[str, str]:
        """End of step: (the kept output for the model, the part of the stream not sent yet)."""
        self.buffer.end_step()
        with self.lock:
            rest = "".join(self.pending)
            self.pending.clear()
            self.pending_len = 0
            return self.kept.getvalue(), rest


class _Worker:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.capture = _Capture(channel, 50_000, 500_000, 0.05)
        self.builtins: dict[str, Any] = dict(vars(builtins))
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__doc__": None,
            "__builtins__": self.builtins,
        }
        self.builtins["final_answer"] = self._final_answer
        self.code_cache: dict[str, Any] = {}
        self.tool_names = {"final_answer"}
        self.step_active = False
        self.trace: dict[str, Any] | None = None
        self.final = False
        self.threads_at_start = 0
        self.threads_started = 0
        self.started_at_start = 0
        self.cpu_mark = (time.process_time(), time.thread_time())
        self.gc_skips = 0

    # --- set-up ------------------------------------------------------------------------------------------------

    def initialize(self, message: dict[str, Any]) -> dict[str, Any]:
        report: dict[str, Any] = {"op": "ready", "problems": self.prepare(message)}
        problems: list[str] = report["problems"]
        seccomp = message.get("seccomp")
        report["seccomp"] = False
        if isinstance(seccomp, str):
            error = limits.install_seccomp(binascii.a2b_base64(seccomp.encode("ascii")))
            report["seccomp"] = error is None
            if error is not None:
                problems.append(f"seccomp: {error}")
        sys.stdout = sys.stderr = self.capture
        sys.stdin = io.StringIO()
        self.capture.start()  # after the seccomp filter, which threads inherit
        self._count_new_threads()
        import gc

        gc.freeze()  # the worker's own objects are never garbage: keep them out of every later collection
        return report

    def prepare(self, message: dict[str, Any]) -> list[str]:
        """The part of `initialize` a zygote does once for all the workers it forks: working directory, packages,
        limits. Safe to repeat in a forked worker (a site directory already on sys.path is not added again)."""
        problems: list[str] = []
        cwd = message.get("cwd")
        if isinstance(cwd, str):
            try:
                os.chdir(cwd)
            except OSError as exc:
                problems.append(f"chdir {cwd}: {exc}")
        for directory in message.get("site_dirs") or []:
            if directory in sys.path:
                continue
            import site

            site.addsitedir(directory)
        self.capture = _Capture(
            self.channel,
            int(message.get("output_limit", 50_000)),
            int(message.get("stream_limit", 500_000)),
            float(message.get("flush_interval", 0.05)),
        )
        limit = message.get("max_message_bytes")
        if isinstance(limit, int) and limit > 0:
            self.channel.max_bytes = limit  # the host's limit, so both ends refuse the same sizes
        limits.unblock_signals()
        if message.get("die_with_parent"):
            problems += limits.die_with_parent()
        problems += limits.apply_rlimits(message.get("rlimits") or {})
        return problems

    def _count_new_threads(self) -> None:
        """Count threads as they are created: a new thread may not have run (nor be counted by `_thread._count`)
        by the time a step that started it ends, because the step's own thread still holds the GIL."""
        for name in ("start_new_thread", "start_joinable_thread"):
            original = getattr(_thread, name, None)
            if original is None:
                continue

            def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.threads_started += 1
                return _original(*args, **kwargs)

            setattr(_thread, name, counting)

    # --- tools and values ----------------------------------------------------------------------------------------

    def install_tools(self, message: dict[str, Any]) -> None:
        self.code_cache.clear()  # cached steps were checked against the old tool names
        for spec in message.get("tools") or []:
            name = spec["name"]
            self.tool_names.add(name)
            if name == "final_answer":
                continue
            self.builtins[name] = self._make_tool(name, spec.get("doc"))

    def _make_tool(self, name: str, doc: Any) -> Callable[..., Any]:
        call = self._call_host

        def tool(*args: Any, **kwargs: Any) -> Any:
            return call(name, args, kwargs)

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = doc if isinstance(doc, str) else None
        return tool

    def _rpc(self, message: dict[str, Any]) -> dict[str, Any]:
        if not self.step_active:
            raise RuntimeError(
                "tools can only be called while a step is running (not from a leftover thread)"
            )
        with self.channel.call_lock:
            self.capture.flush_stream()
            self.channel.send(message)
            while True:
                reply = self.channel.receive()
                if reply["op"] in ("return", "raise"):
                    return reply
                if reply["op"] == "pause":
                    raise StepPaused(str(reply.get("message") or "the step paused for approval"))
                raise _ProtocolBroken(f"unexpected {reply['op']!r} while waiting for a tool result")

    def _call_host(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            message = {
                "op": "call",
                "tool": name,
                "args": wire.encode_value(list(args)),
                "kwargs": wire.encode_value(kwargs),
            }
        except wire.WireError as exc:
            raise TypeError(f"cannot pass this argument to tool {name!r}: {exc}") from None
        if self.trace:
            message["trace"] = self.trace
        reply = self._rpc(message)
        if reply["op"] == "raise":
            raise _rebuild_exception(reply)
        try:
            return wire.decode_value(reply.get("v"), allow_pickle=True)
        except Exception as exc:  # a pickled result whose class is not installed in the sandbox
            raise TypeError(
                f"tool {name!r} returned a value that cannot be rebuilt in the sandbox ({type(exc).__name__}: {exc}); "
                "the tool should return plain data (str, numbers, lists, dicts)"
            ) from None

    def _final_answer(self, answer: Any = None) -> None:
        """End the run with `answer` (any Python object the safe format can carry) as its result."""
        try:
            encoded = wire.encode_value(answer)
        except wire.WireError as exc:
            raise TypeError(f"final_answer() cannot return this value: {exc}") from None
        reply = self._rpc({"op": "final", "v": encoded})
        if reply["op"] == "raise":
            raise _rebuild_exception(reply)
        self.final = True
        raise FinalAnswerSignal

    def set_variables(self, message: dict[str, Any]) -> dict[str, Any]:
        values = message.get("v") or {}
        failed: dict[str, str] = {}
        for name, data in values.items():
            try:
                self.namespace[name] = wire.decode_value(data, allow_pickle=True)
            except Exception as exc:  # the class may not exist in the sandbox
                failed[name] = f"{type(exc).__name__}: {exc}"
        return {"op": "ok", "failed": failed}

    def get_variables(self, message: dict[str, Any]) -> dict[str, Any]:
        names = message.get("names")
        if names is None:
            names = [
                name
                for name, value in self.namespace.items()
                if not name.startswith("_") and not callable(value) and type(value).__name__ != "module"
            ]
        result = {
            name: wire.encode_or_describe(self.namespace[name]) for name in names if name in self.namespace
        }
        return {
            "op": "values",
            "v": result,
            "missing": [name for name in names if name not in self.namespace],
        }

    def list_files(self, message: dict[str, Any]) -> dict[str, Any]:
        limit = message.get("max_files")
        try:
            listing = workdir.scan(
                os.getcwd(), limit if isinstance(limit, int) else workdir.DEFAULT_MAX_FILES
            )
        except OSError as exc:  # the working directory itself is gone
            return {"op": "listing", "files": [], "truncated": False, "error": str(exc)}
        return {"op": "listing", **listing}

    def read_file(self, message: dict[str, Any]) -> dict[str, Any]:
        length = message.get("length")
        try:
            data, size = workdir.read_chunk(
                os.getcwd(),
                message.get("path"),  # type: ignore[arg-type]  # checked there
                int(message.get("offset") or 0),
                workdir.MAX_CHUNK_BYTES if length is None else int(length),
            )
        except (OSError, ValueError, TypeError) as exc:
            return {"op": "chunk", "error": str(exc)}
        return {"op": "chunk", "data": binascii.b2a_base64(data, newline=False).decode("ascii"), "size": size}

    # --- running code --------------------------------------------------------------------------------------------

    def _compile(self, source: str) -> Any:
        cached = self.code_cache.get(source)
        if cached is not None:
            return cached
        flags = _ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        tree = compile(
            source, shaping.AGENT_CODE_FILENAME, "exec", flags=flags | _ast.PyCF_ONLY_AST, dont_inherit=True
        )
        refusal = shaping.find_tool_rebinding(tree, self.tool_names, source)
        if refusal is not None:
            raise _Refused(refusal)
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = tree.body[-1]
            target = _ast.Name(id=_LAST_VALUE, ctx=_ast.Store())
            assign = _ast.Assign(targets=[target], value=last.value, type_comment=None)
            for node in (target, assign):
                for attribute in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
                    setattr(node, attribute, getattr(last, attribute))
            tree.body[-1] = assign
        code = compile(tree, shaping.AGENT_CODE_FILENAME, "exec", flags=flags, dont_inherit=True)
        if len(self.code_cache) >= _CODE_CACHE_SIZE:
            self.code_cache.pop(next(iter(self.code_cache)))
        self.code_cache[source] = code
        return code

    def run(self, message: dict[str, Any]) -> dict[str, Any]:
        source = message.get("code")
        step = message.get("id")
        if not isinstance(source, str):
            raise _ProtocolBroken("run without code")
        limits.set_cpu_budget(message.get("cpu_seconds"))
        trace = message.get("trace")  # the host's trace context, echoed with each tool call of this step
        self.trace = trace if isinstance(trace, dict) else None
        self.threads_at_start = _thread._count()
        self.started_at_start = self.threads_started
        self.capture.begin()
        self.final = False
        error: BaseException | None = None
        text: str | None = None
        try:
            code = self._compile(source)
        except _Refused as exc:
            text = str(exc)
        except SyntaxError as exc:
            text = shaping.format_syntax_error(exc, source)
        except (RecursionError, MemoryError, ValueError) as exc:
            text = f"The code could not be compiled: {type(exc).__name__}: {exc}"
        else:
            self.namespace.pop(_LAST_VALUE, None)
            self.step_active = True
            try:
                outcome = eval(code, self.namespace)
                if code.co_flags & _CO_COROUTINE:
                    import asyncio

                    asyncio.run(outcome)
            except FinalAnswerSignal:
                pass
            except BaseException as exc:  # noqa: BLE001 - everything agent code raises becomes an observation
                error = exc
            finally:
                self.step_active = False
            if error is not None and not self.final:
                text = shaping.format_exception(error, source)
                variables = shaping.describe_variables(self.namespace, self.tool_names)
                if variables:
                    text += "\n" + variables
        self._collect_garbage()
        restart = self._health_check(error)
        logs, rest = self.capture.finish()
        if text is not None and not self.final:
            return {
                "op": "error",
                "id": step,
                "message": text,
                "logs": logs,
                "rest": rest,
                "restart": restart,
            }
        value = None if self.final else self.namespace.pop(_LAST_VALUE, None)
        reply = {
            "op": "done",
            "id": step,
            "final": self.final,
            "logs": logs,
            "rest": rest,
            "restart": restart,
            "variables": "" if self.final else shaping.describe_variables(self.namespace, self.tool_names),
        }
        reply["value"] = None if value is None else wire.encode_or_describe(value)
        return reply

    def _collect_garbage(self) -> None:
        """Collect this step's cyclic garbage now, while the step's time limit still applies, so that a `__del__`
        that never returns stops this step instead of a later one. A full collection is skipped for a while after
        one turned out slow (a large heap): the young generations hold this step's garbage anyway."""
        import gc

        if self.gc_skips > 0:
            self.gc_skips -= 1
            gc.collect(1)
            return
        started = time.perf_counter()
        gc.collect()
        if time.perf_counter() - started > _SLOW_COLLECTION_SECONDS:
            self.gc_skips = _SLOW_COLLECTION_SKIPS

    def _health_check(self, error: BaseException | None) -> str | None:
        """After a step: is the worker still fit to keep its state? A reason to restart it, or None."""
        if isinstance(error, MemoryError) and not limits.has_memory_headroom():
            return "The worker's memory limit is nearly used up."
        # CPU used by threads other than this one since the last check catches spinners that started and went
        # quiet during the step; threads started by the step are sampled right away.
        process, own = time.process_time(), time.thread_time()
        others = (process - self.cpu_mark[0]) - (own - self.cpu_mark[1])
        restart = None
        started = self.threads_started > self.started_at_start or _thread._count() > self.threads_at_start
        if (started or others > _OTHER_THREADS_CPU) and _threads_keep_busy():
            restart = "Threads started by the code were still using the CPU after the step ended."
        self.cpu_mark = (time.process_time(), time.thread_time())
        return restart


def _threads_keep_busy() -> bool:
    """Whether other threads go on using the CPU: sampled in short slices for as long as they keep using some.

    A spinning thread on a loaded host gets only a share of a core (a tenth at load 20 on 2 cores), too little to
    pass a single slice's bar; it keeps adding CPU time slice after slice, though, while a blocked or sleeping
    thread adds none and ends the sampling after one slice.
    """
    start = last = time.process_time() - time.thread_time()
    for _ in range(_BUSY_MAX_SLICES):
        time.sleep(_BUSY_SAMPLE_SECONDS)
        now = time.process_time() - time.thread_time()
        if now - start > _BUSY_SAMPLE_SECONDS * _BUSY_FRACTION:
            return True
        if now - last < _IDLE_SLICE_CPU:
            return False
        last = now
    return False


def _rebuild_exception(reply: dict[str, Any]) -> BaseException:
    blob = reply.get("pickle")
    if isinstance(blob, str):
        try:
            error = wire.decode_value({wire.MARKER: "pickle", "v": blob}, allow_pickle=True)
            if isinstance(error, BaseException):
                return error
        except Exception:  # the exception's class may not exist in the sandbox
            pass
    kind = str(reply.get("etype") or "Exception")
    message = str(reply.get("message") or "")
    if (
        kind == "MessageTooLarge"
    ):  # the host's class, which the sandbox has too (unpickling looked for codeloop's)
        return wire.MessageTooLarge(message)
    builtin = getattr(builtins, kind, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:
            return builtin(message)
        except Exception:
            pass
    return RuntimeError(f"{kind}: {message}" if message else kind)


def main(reader: BinaryIO, max_bytes: int = wire.DEFAULT_MAX_MESSAGE_MB * 2**20) -> None:
    """Serve the protocol on `reader` (the host's stream) and file descriptor 1 until the host goes away."""
    out_fd = os.dup(1)
    os.dup2(
        2, 1
    )  # stray writes to fd 1 (C code, a crash report) go to the diagnostics stream, not the protocol
    import faulthandler

    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    serve_worker(reader, out_fd, max_bytes)
    os._exit(0)


def hello_message() -> dict[str, Any]:
    """The first message of a worker (or zygote): protocol version, Python version, machine, process id."""
    return {
        "op": "hello",
        "protocol": wire.PROTOCOL_VERSION,
        "python": list(sys.version_info[:3]),
        "machine": os.uname().machine,
        "pid": os.getpid(),
    }


def serve_worker(reader: BinaryIO, out_fd: int, max_bytes: int, init: dict[str, Any] | None = None) -> None:
    """Say hello, apply the host's ``init`` (received, or given: a zygote's worker gets the one its zygote was
    given for it), then serve steps until the host goes away (returns then)."""
    channel = _Channel(reader, out_fd, max_bytes)
    worker = _Worker(channel)
    try:
        with channel.call_lock:
            channel.send(hello_message())
            message = channel.receive() if init is None else init
        if message["op"] != "init":
            raise _ProtocolBroken(f"expected init, got {message['op']!r}")
        channel.send(worker.initialize(message))
        _serve(worker, channel)
    except (_ProtocolBroken, BrokenPipeError):
        pass


def _serve(worker: _Worker, channel: _Channel) -> None:
    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
        "run": worker.run,
        "vars": worker.set_variables,
        "get": worker.get_variables,
        "files": worker.list_files,
        "read": worker.read_file,
    }
    while True:
        with channel.call_lock:  # a leftover thread's tool call must not read the host's next command
            message = channel.receive()
        op = message["op"]
        if op == "exit":
            return
        if op == "tools":
            worker.install_tools(message)
            channel.send({"op": "ok"})
            continue
        handler = handlers.get(op)
        if handler is None:
            raise _ProtocolBroken(f"unknown message {op!r}")
        reply = handler(message)
        if reply is not None:
            try:
                channel.send(reply)
            except (wire.WireError, wire.MessageTooLarge) as exc:
                if op == "get":
                    channel.send(
                        {
                            "op": "values",
                            "v": {},
                            "missing": [],
                            "error": f"The variables could not be returned: {exc}",
                        }
                    )
                else:
                    text = f"The code ran, but its result could not be returned: {exc}"
                    channel.send(
                        {
                            "op": "error",
                            "id": message.get("id"),
                            "message": text,
                            "logs": reply.get("logs", ""),
                            "rest": "",
                            "restart": None,
                        }
                    )
