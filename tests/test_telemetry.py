"""OpenTelemetry tracing (codeloop.telemetry): spans after the GenAI conventions, nested as the run ran.

Spans are checked in the SDK's in-memory exporter, and over real OTLP/HTTP: into Arize Phoenix (started here,
its REST API queried), into a port where nothing listens, and into a server that accepts and never answers.
Models are scripted (in process, or the scripted HTTP server speaking OpenAI's wire through the real SDK).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent, telemetry, tool
from codeloop.models import OpenAIModel
from codeloop.testing import ScriptedLLMServer, ScriptedModel
from codeloop.testing.faults import Fault
from sandbox_support import needs_bwrap

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (opentelemetry-sdk) is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise RuntimeError(f"boom: {reason}")


TWO_STEPS = ["```python\nx = add(2, 3)\nprint(x)\n```", "```python\nfinal_answer(add(x, 1))\n```"]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in ("OTEL_SEMCONV_STABILITY_OPT_IN", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]  # for tests that instrument again
    telemetry.instrument(provider)
    yield exporter
    telemetry.uninstrument()


def _tree(finished: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, Any]:
    """name -> [parent names] for every span (names repeat: each occurrence keeps its parent)."""
    by_id = {s.context.span_id: s for s in finished}
    parents: dict[str, list[str | None]] = {}
    for s in finished:
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        parents.setdefault(s.name, []).append(parent.name if parent is not None else None)
    return parents


def _named(finished: Any, name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


@needs_bwrap
def test_a_sandboxed_code_run_nests_tool_spans_under_the_code_under_the_step(
    spans: InMemorySpanExporter,
) -> None:
    agent = CodeAgent(
        tools=[add], model=ScriptedModel(TWO_STEPS), executor="sandbox", verbosity_level=0, store=None
    )
    with agent:
        assert agent.run("Add.") == 6
    finished = spans.get_finished_spans()
    tree = _tree(finished)
    assert tree["invoke_agent CodeAgent"] == [None]
    assert tree["step 1"] == tree["step 2"] == ["invoke_agent CodeAgent"]
    assert sorted(tree["chat scripted"]) == ["step 1", "step 2"]
    assert sorted(tree["execute_code"]) == ["step 1", "step 2"]
    assert tree["execute_tool add"] == ["execute_code", "execute_code"]  # through the sandbox's tool RPC
    assert len({s.context.trace_id for s in finished}) == 1
    run = _named(finished, "invoke_agent CodeAgent")[0]
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["codeloop.run.state"] == "success"
    chat = _named(finished, "chat scripted")
    assert run.attributes["gen_ai.usage.input_tokens"] == sum(
        s.attributes["gen_ai.usage.input_tokens"] for s in chat
    )
    tool_span = _named(finished, "execute_tool add")[0]
    assert tool_span.attributes["gen_ai.tool.name"] == "add"
    assert tool_span.attributes["gen_ai.tool.call.id"]
    # Content capture is off by default: no arguments, results, code or messages on any span.
    for s in finished:
        assert not {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "codeloop.code",
                    "gen_ai.input.messages"} & set(s.attributes)  # fmt: skip


def test_the_local_executor_on_its_own_thread_keeps_tool_spans_under_the_step(
    spans: InMemorySpanExporter,
) -> None:
    # arun runs code through asyncio.to_thread: off the main thread, the local executor runs the step on a
    # thread of its own, which must still see the run's context (its trace span, its listener).
    agent = CodeAgent(
        tools=[add], model=ScriptedModel(TWO_STEPS), executor="local", verbosity_level=0, store=None
    )
    assert asyncio.run(agent.arun("Add.")) == 6
    tree = _tree(spans.get_finished_spans())
    assert tree["execute_tool add"] == ["execute_code", "execute_code"]
    assert sorted(tree["execute_code"]) == ["step 1", "step 2"]


def test_latest_conventions_and_content_capture_follow_the_standard_variables(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    telemetry.instrument(spans.provider)  # type: ignore[attr-defined]
    script = [
        {"content": "", "tool_calls": [{"id": "call_a", "name": "add", "arguments": {"a": 2, "b": 3}}],
         "usage": {"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 60}},
        {"content": "", "tool_calls": [{"id": "call_b", "name": "final_answer", "arguments": {"answer": "5"}}]},
    ]  # fmt: skip
    with ScriptedLLMServer(script) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="x")
        agent = ToolCallingAgent(tools=[add], model=model, verbosity_level=0, store=None)
        assert agent.run("Add 2 and 3.") == "5"
    finished = spans.get_finished_spans()
    chat = _named(finished, "chat gpt-4o")[0]
    assert chat.attributes["gen_ai.provider.name"] == "openai" and "gen_ai.system" not in chat.attributes
    assert chat.attributes["gen_ai.usage.input_tokens"] == 100
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 60  # through OpenAI's cached_tokens
    assert "Add 2 and 3." in chat.attributes["gen_ai.input.messages"]
    call = _named(finished, "execute_tool add")[0]
    assert call.attributes["gen_ai.tool.call.id"] == "call_a"  # the model's own id
    assert json.loads(call.attributes["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
    assert call.attributes["gen_ai.tool.call.result"] == "5"
    assert _tree(finished)["execute_tool add"] == ["step 1"]


def test_v136_names_by_default_and_a_latest_only_capture_value_is_refused_with_a_warning(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    with caplog.at_level(logging.WARNING, logger="codeloop.telemetry"):
        telemetry.instrument(spans.provider)  # type: ignore[attr-defined]
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT='SPAN_ONLY'" in caplog.text
    agent = CodeAgent(tools=[], model=ScriptedModel(["```python\nfinal_answer(1)\n```"]), executor="local",
                      verbosity_level=0, store=None)  # fmt: skip
    agent.run("One.")
    chat = _named(spans.get_finished_spans(), "chat scripted")[0]
    assert (
        chat.attributes["gen_ai.system"] == "scriptedmodel" and "gen_ai.provider.name" not in chat.attributes
    )
    assert "gen_ai.input.messages" not in chat.attributes
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")  # v1.36's own switch
    assert telemetry.instrument(spans.provider).capture_content  # type: ignore[attr-defined]


def test_errors_are_recorded_on_the_tool_the_step_and_a_failed_model_call(
    spans: InMemorySpanExporter,
) -> None:
    failing = ["```python\nexplode('now')\n```", "```python\nfinal_answer(0)\n```"]
    agent = CodeAgent(
        tools=[explode], model=ScriptedModel(failing), executor="local", verbosity_level=0, store=None
    )
    assert agent.run("Fail once.") == 0
    finished = spans.get_finished_spans()
    tool_span = _named(finished, "execute_tool explode")[0]
    assert (
        tool_span.status.status_code.name == "ERROR" and tool_span.attributes["error.type"] == "RuntimeError"
    )
    assert any(e.name == "exception" for e in tool_span.events)
    assert _named(finished, "step 1")[0].status.status_code.name == "ERROR"  # the step's code failed
    assert _named(finished, "step 2")[0].status.status_code.name == "UNSET"

    spans.clear()
    with ScriptedLLMServer([Fault.error(400, "no such model")]) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="x")
        broken = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, store=None)
        result = broken.run("Anything.", return_full_result=True)
    assert result.state == "error"
    finished = spans.get_finished_spans()
    chat = _named(finished, "chat gpt-4o")[0]
    assert chat.status.status_code.name == "ERROR" and "no such model" in chat.status.description
    run = _named(finished, "invoke_agent CodeAgent")[0]
    assert run.status.status_code.name == "ERROR" and run.attributes["codeloop.run.state"] == "error"


def test_a_retried_model_request_is_an_event_on_its_chat_span(spans: InMemorySpanExporter) -> None:
    script = [Fault.rate_limit(retry_after=0.01), "```python\nfinal_answer(1)\n```"]
    with ScriptedLLMServer(script) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="x")
        CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, store=None).run("One.")
    chat = _named(spans.get_finished_spans(), "chat gpt-4o")[0]
    retries = [e for e in chat.events if e.name == "codeloop.model.retry"]
    assert len(retries) == 1 and retries[0].attributes["codeloop.retry.status"] == 429


def test_a_managed_agents_run_nests_under_the_managers_tool_call(spans: InMemorySpanExporter) -> None:
    helper = CodeAgent(tools=[add], model=ScriptedModel(["```python\nfinal_answer(add(40, 2))\n```"]),
                       executor="local", name="helper", description="Adds.", verbosity_level=0, store=None)  # fmt: skip
    boss = CodeAgent(tools=[], managed_agents=[helper], executor="local", verbosity_level=0, store=None,
                     model=ScriptedModel(["```python\nfinal_answer(helper(task='add'))\n```"]))  # fmt: skip
    assert "42" in boss.run("Delegate.")
    tree = _tree(spans.get_finished_spans())
    assert tree["invoke_agent CodeAgent"] == [None]
    assert tree["execute_tool helper"] == ["execute_code"]
    assert tree["invoke_agent helper"] == ["execute_tool helper"]
    assert tree["execute_tool add"] == [
        "execute_code",
    ]
    assert sorted(tree["step 1"]) == ["invoke_agent CodeAgent", "invoke_agent helper"]


def test_a_tool_call_echoed_from_the_sandbox_cannot_move_into_another_trace() -> None:
    from opentelemetry import trace

    provider = TracerProvider()
    telemetry.instrument(provider)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("step"):
            sent = telemetry.trace_carrier()
            ours = trace.get_current_span().get_span_context()
        assert sent and sent["traceparent"].split("-")[1] == f"{ours.trace_id:032x}"
        forged = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
        with telemetry.remote_parent(forged, sent):
            assert trace.get_current_span().get_span_context().trace_id == ours.trace_id
        with telemetry.remote_parent(dict(sent), sent):
            assert trace.get_current_span().get_span_context().span_id == ours.span_id
    finally:
        telemetry.uninstrument()


def test_import_codeloop_and_its_telemetry_module_loads_no_opentelemetry() -> None:
    code = "import sys, codeloop, codeloop.telemetry; print(sorted(m for m in sys.modules if 'opentelemetry' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# --- real OTLP export: nobody listening, a collector that hangs, and Arize Phoenix -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # export soon, so failures happen during the runs
    yield monkeypatch
    telemetry.uninstrument()


def test_a_port_where_nothing_listens_drops_spans_counts_them_and_says_so_once(
    otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    with caplog.at_level(logging.WARNING, logger="codeloop.telemetry"):
        tracing = telemetry.instrument()
        for _ in range(3):
            agent = CodeAgent(tools=[add], model=ScriptedModel(TWO_STEPS), executor="local", verbosity_level=0,
                              store=None)  # fmt: skip
            assert agent.run("Add.") == 6
        tracing.shutdown(timeout_s=5)
    # 3 runs x (run, 2 steps, 2 chats, 2 code runs, 2 tool calls) = 27 spans, none delivered, all counted
    assert tracing.dropped_spans == 27
    first = [r for r in caplog.records if "dropped" in r.getMessage() and "in all" not in r.getMessage()]
    assert len(first) == 1  # reported once, not per batch
    assert "27 span(s) were dropped in all" in caplog.text


class _BlackHole:
    """An HTTP endpoint that accepts connections and never answers (a collector that hangs)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


def test_a_collector_that_hangs_neither_holds_nor_fails_a_run_and_the_queue_stays_bounded(
    otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hole = _BlackHole()
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{hole.port}")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")
    otlp_env.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    otlp_env.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")

    @tool
    def wait_for_exporter() -> bool:
        """Returns once the span exporter is stuck in a request to the collector."""
        return hole.accepted.wait(60)

    first = "```python\nprint(wait_for_exporter())\n```"
    replies = (
        [first]
        + [f"```python\nprint(add({i}, 1))\n```" for i in range(6)]
        + ["```python\nfinal_answer(7)\n```"]
    )
    try:
        with caplog.at_level(logging.WARNING, logger="codeloop.telemetry"):
            tracing = telemetry.instrument()
            agent = CodeAgent(tools=[add, wait_for_exporter], model=ScriptedModel(replies), executor="local",
                              verbosity_level=0, store=None, max_steps=10)  # fmt: skip
            result = agent.run("Go on while the collector hangs.", return_full_result=True)
            # The whole run (8 steps after the exporter got stuck) finished while the export still hangs.
            assert result.state == "success" and result.output == 7
            assert hole.connections and tracing.dropped_spans > 0  # the queue (4 spans) overflowed: counted
            overflow = [r for r in caplog.records if "export queue was full" in r.getMessage()]
            assert len(overflow) == 1
            tracing.shutdown(timeout_s=0.5)  # bounded: the hung request is abandoned
    finally:
        hole.close()


PHOENIX_PYTHON = os.environ.get("CODELOOP_PHOENIX_PYTHON", sys.executable)


def _phoenix_problem() -> str | None:
    probe = subprocess.run([PHOENIX_PYTHON, "-c", "import importlib.util as u; print(bool(u.find_spec('phoenix')))"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    if probe.stdout.strip() != "True":
        return f"arize-phoenix is not installed for {PHOENIX_PYTHON} (`make test` installs it into .venv-phoenix and sets CODELOOP_PHOENIX_PYTHON)"
    return None


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problem = _phoenix_problem()
    if problem:
        pytest.skip(problem)
    home = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(home), "PHOENIX_PORT": str(port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_TELEMETRY_ENABLED": "false"}  # fmt: skip
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    log = (home / "server.log").open("w")
    server = subprocess.Popen([PHOENIX_PYTHON, "-m", "phoenix.server.main", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # its first start compiles a large package: slow on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Phoenix did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.timeout(420)
def test_spans_exported_over_otlp_arrive_in_phoenix_nested_as_the_run_ran(
    phoenix: str, otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix)
    otlp_env.setenv("OTEL_SERVICE_NAME", "codeloop-tests")
    tracing = telemetry.instrument()
    agent = CodeAgent(
        tools=[add], model=ScriptedModel(TWO_STEPS), executor="local", verbosity_level=0, store=None
    )
    result = agent.run("Add.", return_full_result=True)
    tracing.shutdown(timeout_s=30)
    assert tracing.dropped_spans == 0
    deadline = time.monotonic() + 60  # Phoenix ingests asynchronously
    while True:
        with urllib.request.urlopen(f"{phoenix}/v1/projects/default/spans?limit=100", timeout=10) as answer:
            found = json.load(answer)["data"]
        ours = [s for s in found if s["attributes"].get("codeloop.run_id") == result.run_id]
        if ours:
            trace_id = ours[0]["context"]["trace_id"]
            ours = [s for s in found if s["context"]["trace_id"] == trace_id]
        if len(ours) == 9 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    names = {s["context"]["span_id"]: s["name"] for s in ours}
    parents = sorted((s["name"], names.get(s["parent_id"])) for s in ours)
    assert parents == sorted([
        ("invoke_agent CodeAgent", None),
        ("step 1", "invoke_agent CodeAgent"), ("step 2", "invoke_agent CodeAgent"),
        ("chat scripted", "step 1"), ("chat scripted", "step 2"),
        ("execute_code", "step 1"), ("execute_code", "step 2"),
        ("execute_tool add", "execute_code"), ("execute_tool add", "execute_code"),
    ])  # fmt: skip
    tool_spans = [s for s in ours if s["name"] == "execute_tool add"]
    assert all(s["attributes"]["gen_ai.tool.call.id"] for s in tool_spans)


def test_the_cli_traces_a_run_when_the_otel_variables_ask_for_it(
    otlp_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codeloop.cli import main

    otlp_env.setenv("OTEL_TRACES_EXPORTER", "console")
    with ScriptedLLMServer(["```python\nfinal_answer(7)\n```"]) as server:
        code = main(["run", "Seven.", "--model", "openai:gpt-4o", "--api-base", server.base_url, "--api-key", "x",
                     "--executor", "local", "--store", "none"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert '"name": "invoke_agent CodeAgent"' in out and '"name": "chat gpt-4o"' in out
    assert telemetry._current_telemetry() is None  # shut down (and flushed) at exit

    otlp_env.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert main(["run", "Seven.", "--store", "none"]) == 2
    assert "OTEL_TRACES_EXPORTER='zipkin'" in capsys.readouterr().err
