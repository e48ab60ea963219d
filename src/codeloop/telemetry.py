"""OpenTelemetry tracing after the GenAI semantic conventions: a listener on the loop's events, plus span hooks.

`instrument()` (or, for the CLI, the standard `OTEL_*` variables) turns it on. Each run becomes an
`invoke_agent {agent}` span (a managed agent's nested under the tool call that ran it), each action step a
`step {n}` span, each model call a `chat {model}` span, each code action an `execute_code` span and each tool call
an `execute_tool {tool}` span, nested under the step (through the sandbox's tool RPC too). Runs and steps come
from the events every agent emits anyway (`codeloop.events`); model calls, code runs and tool calls are timed by
the hooks below, which the effect seams call and which cost nothing while tracing is off.

The conventions are still "Development". As the official instrumentations do, the v1.36 names are emitted by
default (`gen_ai.system`) and the latest ones with `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`
(`gen_ai.provider.name`). Message content, code and tool arguments and results are recorded only when content
capture is on: `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (v1.36), `SPAN_ONLY` or
`SPAN_AND_EVENT` (latest), or `instrument(capture_content=True)`.

OpenTelemetry is the `otel` extra and is imported only by `instrument()`: `import codeloop` stays light.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from ._extras import install_hint

__all__ = [
    "Telemetry",
    "instrument",
    "instrument_from_env",
    "uninstrument",
    "enabled_by_env",
    "model_call",
    "code_execution",
    "tool_call",
    "trace_carrier",
    "remote_parent",
]

_log = logging.getLogger("codeloop.telemetry")
_TRACER_NAME = "codeloop"
LATEST = "gen_ai_latest_experimental"
_SHUTDOWN_TIMEOUT_S = 5.0
_SHUTDOWN_TIMEOUT_FAILING_S = 0.5  # the endpoint already refused spans: what is left would be dropped anyway


@dataclass
class _Settings:
    latest: bool
    capture_content: bool


class Telemetry:
    """What `instrument()` set up: the tracer provider spans go to, and how many spans were dropped."""

    def __init__(self, tracer_provider: Any, settings: _Settings, owned: bool, counter: _DropCounter) -> None:
        from opentelemetry import trace

        self.tracer_provider = tracer_provider
        """The OpenTelemetry `TracerProvider` (yours when you passed one, else the one built from `OTEL_*`)."""
        self.latest_conventions = settings.latest
        """True under `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`."""
        self.capture_content = settings.capture_content
        """Whether message content, code, and tool arguments and results are recorded on spans."""
        self._owned = owned
        self._counter = counter
        self.tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._shut = False

    @property
    def dropped_spans(self) -> int:
        """Spans that never reached the exporter's endpoint (refused, unreachable, or the queue was full)."""
        return self._counter.dropped

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop tracing and flush a provider built by `instrument()` (a provider you passed stays yours).

        Waits at most `timeout_s` (default 5 s, half a second when the endpoint already failed): an
        unreachable collector never holds a program's exit for long. Dropped spans are reported once, here.
        """
        if self._shut:
            return
        self._shut = True
        if _current_telemetry() is self:
            uninstrument()
        if not self._owned:
            return
        if timeout_s is None:
            timeout_s = _SHUTDOWN_TIMEOUT_FAILING_S if self._counter.failing else _SHUTDOWN_TIMEOUT_S
        for processor in self._counter.processors:
            try:  # the SDK's BatchSpanProcessor.shutdown takes no timeout; its inner batch processor does
                inner = getattr(processor, "_batch_processor", None)
                if inner is not None:
                    inner.shutdown(timeout_millis=int(timeout_s * 1000))
                else:
                    processor.shutdown()
            except Exception:  # a broken exporter must not break the program's exit
                _log.debug("span processor shutdown failed", exc_info=True)
            self._counter.count_unsent(processor)
        if self._counter.dropped:
            _log.warning(
                "OpenTelemetry: %d span(s) were dropped in all (%s)",
                self._counter.dropped,
                self._counter.reason or "not exported",
            )


# --- switching on and off ---------------------------------------------------------------------------------------

_active: Telemetry | None = None
_active_lock = threading.Lock()


def _current_telemetry() -> Telemetry | None:
    return _active


def instrument(tracer_provider: Any = None, *, capture_content: bool | None = None) -> Telemetry:
    """Trace every agent run in this process with OpenTelemetry; returns the `Telemetry` in use.

    `tracer_provider`: where spans go. Default: the global provider if your program configured the SDK, else
    one built from the standard variables (`OTEL_TRACES_EXPORTER` = `otlp` (default), `console` or `none`;
    `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_BSP_MAX_QUEUE_SIZE`, ...),
    exporting OTLP over HTTP from a bounded queue in a background thread, so a slow or unreachable collector
    never slows or fails a run; spans it cannot take are counted (`Telemetry.dropped_spans`) and reported once.
    `capture_content`: record message content, code, and tool arguments and results (default: the
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` variable; off when unset).
    Calling it again replaces the previous setup (which is shut down if it built its own provider).
    """
    global _active
    try:
        from opentelemetry import trace
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"tracing needs OpenTelemetry: {install_hint('otel')}") from exc
    settings = _settings_from_env(capture_content)
    owned = False
    counter = _DropCounter()
    if tracer_provider is None:
        configured = trace.get_tracer_provider()
        if type(configured).__module__.startswith("opentelemetry.sdk"):
            tracer_provider = configured
        else:
            tracer_provider, owned = _provider_from_env(counter), True
    telemetry = Telemetry(tracer_provider, settings, owned, counter)
    with _active_lock:
        previous, _active = _active, telemetry
        ev.add_process_listener(_listener)
    if previous is not None and previous is not telemetry:
        previous.shutdown()
    if owned:
        atexit.register(telemetry.shutdown)
    return telemetry


def uninstrument() -> None:
    """Stop tracing new runs (a provider `instrument()` built is flushed by `Telemetry.shutdown()`)."""
    global _active
    with _active_lock:
        _active = None  # the listener stays: it closes the spans of runs still going, then does nothing


def enabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for traces: `OTEL_TRACES_EXPORTER` other than `none`, or an OTLP
    endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); never under `OTEL_SDK_DISABLED`."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def instrument_from_env() -> Telemetry | None:
    """`instrument()` when `enabled_by_env()`, else None (the CLI calls this)."""
    return instrument() if enabled_by_env() else None


def _settings_from_env(capture_content: bool | None) -> _Settings:
    opt_in = {v.strip() for v in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    latest = LATEST in opt_in
    if capture_content is None:
        raw = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip()
        if latest:  # NO_CONTENT / SPAN_ONLY / EVENT_ONLY / SPAN_AND_EVENT; codeloop records on spans only
            capture_content = raw.upper() in ("SPAN_ONLY", "SPAN_AND_EVENT")
            known: tuple[str, ...] = ("", "NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT")
        else:
            capture_content = raw.lower() == "true"
            known = ("", "true", "false")
        if raw.upper() not in {k.upper() for k in known}:
            _log.warning(
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=%r is not one of %s; content is not captured",
                raw,
                ", ".join(k for k in known if k),
            )
    return _Settings(latest, bool(capture_content))


# --- a provider from the standard variables, and counting what it drops -----------------------------------------


class _DropCounter:
    """Counts spans lost on the way out and reports the first loss once (an unreachable collector is not news
    worth repeating for every batch)."""

    def __init__(self) -> None:
        self.dropped = 0
        self.failing = False
        self.reason = ""
        self.processors: list[Any] = []
        self.in_flight = 0
        self.closed = False
        self._lock = threading.Lock()
        self._reported = False

    def drop(self, count: int, reason: str) -> None:
        with self._lock:
            if self.closed:  # counted at shutdown already (a batch still in flight then)
                return
            self.dropped += count
            first = not self._reported
            self._reported = True
            self.reason = self.reason or reason
        if first:
            _log.warning(
                "OpenTelemetry: dropped %d span(s): %s. Runs go on unaffected; further losses are counted "
                "(Telemetry.dropped_spans) and their total is reported at shutdown",
                count,
                reason,
            )

    def count_unsent(self, processor: Any) -> None:
        """After shutdown: what is still queued, or was being sent when the wait ended, is lost."""
        left = len(_queue_of(processor) or ()) + self.in_flight
        if left:
            self.drop(left, self.reason or "not sent before shutdown")
        with self._lock:
            self.closed = True

    def sending(self, count: int) -> None:
        with self._lock:
            self.in_flight += count


def _queue_of(processor: Any) -> Any:
    # The SDK's bounded queue (a deque); looked up defensively: it is the SDK's own attribute.
    return getattr(getattr(processor, "_batch_processor", None), "_queue", None)


def _provider_from_env(counter: _DropCounter) -> Any:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as exc:
        raise ImportError(f"tracing needs the OpenTelemetry SDK: {install_hint('otel')}") from exc

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "codeloop"})
    provider = TracerProvider(resource=resource)
    names = [n.strip().lower() for n in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")]
    for name in filter(None, names):
        if name == "none":
            continue
        if name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
        elif name == "otlp":
            processor = _counting_batch_processor(BatchSpanProcessor, _otlp_exporter(), counter)
            counter.processors.append(processor)
            provider.add_span_processor(processor)
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported by codeloop; use otlp, console or none "
                "(or configure the SDK yourself and call codeloop.telemetry.instrument(your_provider))"
            )
    return provider


def _otlp_exporter() -> Any:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: codeloop exports OTLP over HTTP (http/protobuf, port 4318); "
            "for gRPC configure the SDK yourself and pass its provider to codeloop.telemetry.instrument()"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(f"OTLP export needs the OTLP HTTP exporter: {install_hint('otel')}") from exc
    # The exporter's own retry warnings would repeat for every batch; the counter reports the loss once.
    for name in ("opentelemetry.exporter.otlp.common.http", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.sdk._shared_internal"):  # fmt: skip
        logging.getLogger(name).addFilter(_quiet_export_failures)
    return OTLPSpanExporter()


def _quiet_export_failures(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.CRITICAL


def _counting_batch_processor(base: type, exporter: Any, counter: _DropCounter) -> Any:
    from opentelemetry.sdk.trace.export import SpanExportResult

    class CountingExporter(type(exporter)):  # type: ignore[misc]
        """Delegates to the OTLP exporter and counts the spans of every batch it could not deliver."""

        def export(self, spans: Any) -> Any:
            counter.sending(len(spans))
            try:
                result = super().export(spans)
            except Exception as exc:  # noqa: BLE001 - an exporter bug drops the batch, never the run
                result, why = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
            else:
                why = "the collector could not be reached or refused them"
            finally:
                counter.sending(-len(spans))
            counter.failing = result != SpanExportResult.SUCCESS
            if counter.failing:
                counter.drop(len(spans), f"{why} ({getattr(self, '_endpoint', '?')})")
            return result

    exporter.__class__ = CountingExporter

    class CountingBatchProcessor(base):  # type: ignore[misc,valid-type]
        """The SDK's batch processor (bounded queue, background export), counting spans dropped when full."""

        def on_end(self, span: Any) -> None:
            queue = _queue_of(self)
            maximum = getattr(getattr(self, "_batch_processor", None), "_max_queue_size", None)
            if queue is not None and maximum is not None and len(queue) >= maximum:
                counter.drop(1, "the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)")
            super().on_end(span)

    return CountingBatchProcessor(exporter)


# --- the listener: runs and steps ------------------------------------------------------------------------------


@dataclass
class _RunSpans:
    telemetry: Telemetry
    span: Any
    token: Any
    parent: _RunSpans | None
    var_token: Any = None
    step: Any = None
    step_token: Any = None
    step_failed: list[str] = field(default_factory=list)


_current_run: ContextVar[_RunSpans | None] = ContextVar("codeloop_trace_run", default=None)


def _listener(event: ev.Event) -> None:
    # A run traced from its start is closed properly even if tracing was switched off meanwhile.
    state = _current_run.get()
    telemetry = _active if state is None or isinstance(event, ev.RunStarted) else state.telemetry
    if telemetry is None:
        return
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(telemetry, event)


def _on_run_started(t: Telemetry, e: ev.RunStarted) -> None:
    from opentelemetry import context, trace

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": e.agent,
        "gen_ai.request.model": e.model_id,
        "codeloop.run_id": e.run_id,
    }
    if t.capture_content:
        attributes["gen_ai.input.messages"] = _messages_json([("user", e.task)])
    span = t.tracer.start_span(f"invoke_agent {e.agent}", kind=trace.SpanKind.INTERNAL, attributes=attributes)
    token = context.attach(trace.set_span_in_context(span))
    state = _RunSpans(t, span, token, _current_run.get())
    state.var_token = _current_run.set(state)


def _on_step_started(t: Telemetry, e: ev.StepStarted) -> None:
    from opentelemetry import context, trace

    state = _current_run.get()
    if state is None:
        return
    _end_step(state)
    parent = trace.set_span_in_context(state.span)
    state.step = t.tracer.start_span(
        f"step {e.step_number}", context=parent, attributes={"codeloop.step.number": e.step_number}
    )
    state.step_token = context.attach(trace.set_span_in_context(state.step))


def _on_step_error(t: Telemetry, e: ev.StepError) -> None:
    state = _current_run.get()
    if state is not None and state.step is not None:
        _record_error(state.step, e.error)


def _on_step_finished(t: Telemetry, e: ev.StepFinished) -> None:
    state = _current_run.get()
    if state is None:
        return
    step = state.step
    if step is not None and e.step.token_usage is not None:
        step.set_attribute("gen_ai.usage.input_tokens", e.step.token_usage.input_tokens)
        step.set_attribute("gen_ai.usage.output_tokens", e.step.token_usage.output_tokens)
    _end_step(state)


def _on_run_finished(t: Telemetry, e: ev.RunFinished) -> None:
    from opentelemetry import context

    state = _current_run.get()
    if state is None:
        return
    _end_step(state)
    r = e.result
    span = state.span
    span.set_attribute("codeloop.run.state", r.state)
    span.set_attribute("gen_ai.usage.input_tokens", r.token_usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", r.token_usage.output_tokens)
    if r.cost_usd is not None:
        span.set_attribute("codeloop.cost_usd", r.cost_usd)
    if t.capture_content and r.state in ("success", "max_steps"):
        span.set_attribute("gen_ai.output.messages", _messages_json([("assistant", _text(r.output))]))
    if r.state not in ("success", "max_steps", "awaiting_approval"):
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", r.state)
        span.set_status(Status(StatusCode.ERROR, r.error or r.state))
    span.end()
    _detach(context, state.token)
    try:
        _current_run.reset(state.var_token)
    except ValueError:  # finished from another context than it started in: forget it all the same
        _current_run.set(state.parent)


def _on_model_retry(t: Telemetry, e: ev.ModelRetry) -> None:
    from opentelemetry import trace

    n = e.notice
    trace.get_current_span().add_event(
        "codeloop.model.retry",
        {
            "codeloop.retry.number": n.retry_number,
            "codeloop.retry.max": n.max_retries,
            "codeloop.retry.wait_s": n.wait_s,
            "codeloop.retry.status": n.status if n.status is not None else -1,
            "codeloop.retry.message": n.message,
        },
    )


def _on_tool_progress(t: Telemetry, e: ev.ToolProgress) -> None:
    from opentelemetry import trace

    trace.get_current_span().add_event("codeloop.tool.progress", {"codeloop.progress": e.describe()})


def _end_step(state: _RunSpans) -> None:
    from opentelemetry import context

    if state.step is None:
        return
    state.step.end()
    _detach(context, state.step_token)
    state.step = state.step_token = None


def _detach(context: Any, token: Any) -> None:
    try:
        context.detach(token)
    except Exception:  # a run finished in another context than it ran in (an abandoned stream)
        _log.debug("could not detach a span context", exc_info=True)


_HANDLERS: dict[type, Any] = {
    ev.RunStarted: _on_run_started,
    ev.StepStarted: _on_step_started,
    ev.StepError: _on_step_error,
    ev.StepFinished: _on_step_finished,
    ev.RunFinished: _on_run_finished,
    ev.ModelRetry: _on_model_retry,
    ev.ToolProgress: _on_tool_progress,
}


# --- hooks at the effect seams: model calls, code runs, tool calls ----------------------------------------------


class _Noop:
    """What the hooks hand out while tracing is off: does nothing, costs one attribute lookup."""

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def finished(self, value: Any) -> None:
        """Nothing to record."""


_NOOP = _Noop()


class _SpanScope:
    """An effect's span, current while the effect runs, ended (with any error recorded) when it leaves."""

    def __init__(self, telemetry: Telemetry, span: Any, on_result: Any = None) -> None:
        self.telemetry = telemetry
        self.span = span
        self._on_result = on_result
        self._token: Any = None

    def __enter__(self) -> _SpanScope:
        from opentelemetry import context, trace

        self._token = context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        from opentelemetry import context

        if isinstance(error, BaseException) and not isinstance(error, GeneratorExit):  # not abandoned: failed
            _record_error(self.span, error)
        self.span.end()
        _detach(context, self._token)

    def finished(self, value: Any) -> None:
        """Record what the effect produced (token usage, the tool's result when content is captured)."""
        if self._on_result is None:
            return
        try:
            self._on_result(self.telemetry, self.span, value)
        except Exception:  # telemetry never breaks a run
            _log.debug("could not record a result on a span", exc_info=True)


def model_call(model: Any, messages: Any = None) -> _Noop | _SpanScope:
    """The `chat {model}` span around one model request (a no-op while tracing is off)."""
    t = _active
    if t is None:
        return _NOOP
    from opentelemetry import trace

    model_id = str(getattr(model, "model_id", "") or type(model).__name__)
    provider = str(getattr(model, "provider", "") or type(model).__name__.lower())
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        ("gen_ai.provider.name" if t.latest_conventions else "gen_ai.system"): _PROVIDERS.get(
            provider, provider
        ),
        "gen_ai.request.model": model_id,
    }
    if t.capture_content and messages is not None:
        try:
            attributes["gen_ai.input.messages"] = _messages_json((m.role, m.text) for m in messages)
        except Exception:
            _log.debug("could not record the messages", exc_info=True)
    span = t.tracer.start_span(f"chat {model_id}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    return _SpanScope(t, span, _record_reply)


def code_execution(code: str) -> _Noop | _SpanScope:
    """The `execute_code` span around one code action (a no-op while tracing is off)."""
    t = _active
    if t is None:
        return _NOOP
    attributes: dict[str, Any] = {"codeloop.operation": "execute_code"}
    if t.capture_content:
        attributes["codeloop.code"] = code
    return _SpanScope(t, t.tracer.start_span("execute_code", attributes=attributes), _record_execution)


def tool_call(name: str, call_id: str | None, arguments: Any) -> _Noop | _SpanScope:
    """The `execute_tool {name}` span around one tool call (a no-op while tracing is off)."""
    t = _active
    if t is None:
        return _NOOP
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if t.capture_content:
        attributes["gen_ai.tool.call.arguments"] = _json(arguments)
    return _SpanScope(
        t, t.tracer.start_span(f"execute_tool {name}", attributes=attributes), _record_tool_result
    )


def trace_carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers (`traceparent`), to send along a step to a worker; None when
    tracing is off."""
    if _active is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier or None


@contextmanager
def remote_parent(echoed: Any, sent: dict[str, str] | None) -> Iterator[None]:
    """Make the trace context a worker echoed with a tool call current while the tool runs on the host.

    The worker is untrusted: its echo is used only when it names the trace the host `sent` with the step, so
    sandboxed code cannot graft tool spans onto another trace; otherwise the context sent is used.
    """
    if _active is None or not sent:
        yield
        return
    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    chosen = propagator.extract(sent)
    if isinstance(echoed, dict) and all(isinstance(v, str) and len(v) < 512 for v in echoed.values()):
        candidate = propagator.extract({"traceparent": echoed.get("traceparent", "")})
        theirs = trace.get_current_span(candidate).get_span_context()
        ours = trace.get_current_span(chosen).get_span_context()
        if theirs.is_valid and theirs.trace_id == ours.trace_id:
            chosen = candidate
    token = context.attach(chosen)
    try:
        yield
    finally:
        _detach(context, token)


# --- recording ---------------------------------------------------------------------------------------------------

_PROVIDERS = {"bedrock": "aws.bedrock", "azure": "azure.ai.openai", "hf": "huggingface"}


def _record_reply(t: Telemetry, span: Any, message: Any) -> None:
    usage = getattr(message, "token_usage", None)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
        span.set_attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens)
    if t.capture_content:
        parts = [("assistant", getattr(message, "text", "") or "")]
        span.set_attribute("gen_ai.output.messages", _messages_json(parts))


def _record_execution(t: Telemetry, span: Any, result: Any) -> None:
    span.set_attribute("codeloop.is_final_answer", bool(getattr(result, "is_final_answer", False)))
    if t.capture_content:
        span.set_attribute("codeloop.logs", str(getattr(result, "logs", "") or ""))


def _record_tool_result(t: Telemetry, span: Any, result: Any) -> None:
    if t.capture_content:
        span.set_attribute("gen_ai.tool.call.result", _json(result))


def _record_error(span: Any, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", type(error).__name__)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _messages_json(messages: Any) -> str:
    return json.dumps(
        [{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in messages],
        ensure_ascii=False,
    )


def _json(value: Any) -> str:
    # Only built-in data is rendered (no agent-defined __repr__ runs on the host), as the tool log does.
    from .tool_log import preview

    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return preview(value, budget=4000)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)
