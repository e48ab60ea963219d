"""Text leaving an agent run: to the model's API, to the terminal, to listeners.

Agent code can print anything, including lone surrogates (`'\\udcff'`) that UTF-8 cannot encode; a model can
write rich markup by accident (`codeloop[openai]`); a listener can have a bug. None of that may end a run or be
blamed on the model.
"""

from __future__ import annotations

import io
import sys
import warnings
from typing import Any

import pytest
from rich.console import Console

from codeloop import CodeAgent, ToolCallingAgent, events
from codeloop._text import EncodableStream, encodable, encodable_data
from codeloop.console import ConsoleRenderer
from codeloop.memory import ActionStep, RunResult, Timing
from codeloop.models import OpenAIModel
from codeloop.models.base import ChatMessage, TokenUsage, ToolCall
from codeloop.testing import ScriptedLLMServer, ScriptedModel

SURROGATE_CODE = "```python\nprint('before \\udcff after')\n```"
FINISH = "```python\nfinal_answer('done')\n```"


def strict_stdout() -> io.TextIOWrapper:
    """A stdout like a UTF-8 terminal's: encoding errors raise (Python's default outside the C locale)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def written(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


@pytest.mark.parametrize("executor", ["local", "sandbox"])
def test_a_printed_lone_surrogate_reaches_the_model_replaced_and_the_run_goes_on(executor: str) -> None:
    with ScriptedLLMServer([SURROGATE_CODE, FINISH]) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="x")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the sandbox may warn about reduced isolation
            with CodeAgent(tools=[], model=model, executor=executor, verbosity_level=0) as agent:
                result = agent.run("print odd text", return_full_result=True)
        assert result.state == "success" and result.output == "done", result.error
        # memory keeps what the code printed; the copy sent over HTTP has U+FFFD in its place
        assert "\udcff" in (agent.memory.action_steps[0].observations or "")
        sent = [m["content"] for m in server.requests[1]["messages"] if m["role"] == "user"]
        assert any("before \ufffd after" in str(content) for content in sent)


def test_the_console_prints_a_lone_surrogate_on_a_strict_utf8_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = strict_stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    agent = CodeAgent(
        tools=[], model=ScriptedModel([SURROGATE_CODE, FINISH]), executor="local", verbosity_level=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a console failure would be a listener warning: none may happen
        result = agent.run("print odd text", return_full_result=True)
    assert result.state == "success", result.error
    out = written(stdout)
    assert "before \ufffd after" in out and "Final answer: done" in out


def test_a_failing_listener_is_warned_about_once_and_the_run_and_other_listeners_go_on() -> None:
    seen: list[str] = []

    def broken(event: events.Event) -> None:
        raise ValueError("listener bug")

    model = ScriptedModel(["```python\nx = 1\n```", FINISH])
    agent = CodeAgent(
        tools=[],
        model=model,
        executor="local",
        verbosity_level=0,
        listeners=[broken, lambda e: seen.append(type(e).__name__)],
    )
    with pytest.warns(RuntimeWarning, match=r"listener .*broken raised ValueError: listener bug") as caught:
        assert agent.run("listen") == "done"
    assert len([w for w in caught if "listener" in str(w.message)]) == 1  # not once per event
    assert seen[0] == "RunStarted" and seen[-1] == "RunFinished" and seen.count("StepFinished") == 2
    assert agent.memory.action_steps[-1].is_final_answer


def test_a_failing_listener_does_not_end_a_tool_calling_run_either() -> None:
    def broken(event: events.Event) -> None:
        if isinstance(event, events.ToolCallStarted):
            raise RuntimeError("boom")

    reply = {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "ok"}}]}
    agent = ToolCallingAgent(tools=[], model=ScriptedModel([reply]), verbosity_level=0, listeners=[broken])
    with pytest.warns(RuntimeWarning, match="boom"):
        result = agent.run("answer", return_full_result=True)
    assert result.state == "success" and result.output == "ok"


def test_the_console_prints_markup_like_text_as_written() -> None:
    buffer = io.StringIO()
    renderer = ConsoleRenderer(level=2, console=Console(file=buffer, width=200, highlight=False))
    hint = 'pip install "codeloop[openai]" [bold]x[/bold]'
    message = ChatMessage("assistant", "reply", reasoning=f"think {hint}")
    step = ActionStep(step_number=1)
    result = RunResult(
        None, "error", [step], TokenUsage(), Timing(), f"ModelConfigurationError: {hint}", None
    )
    for event in [
        events.RunStarted(f"task {hint}", model_id="m[x]"),
        events.ModelOutput(message, 1),
        events.ToolCallStarted(ToolCall("1", "search", {"q": hint}), 1),
        events.ExecutionLog(f"log {hint}\n"),
        events.Observation(f"obs {hint}", 1),
        events.StepError(ValueError(hint), 1),
        events.RunFinished(result),
    ]:
        renderer(event)
    out = buffer.getvalue()
    assert out.count('codeloop[openai]" [bold]x[/bold]') == 7, out
    assert "m[x]" in out


def test_encodable_replaces_only_lone_surrogates() -> None:
    assert encodable("plain") == "plain"
    assert encodable("é \U0001f600") == "é \U0001f600"
    assert encodable("a\udcffb") == "a\ufffdb"
    assert encodable("\ud83d\ude00 \ud83d") == "\U0001f600 \ufffd"  # a well-formed pair becomes its character
    data: dict[str, Any] = {"k\udc80": ["x", ("\udcff",)], "same": 1}
    assert encodable_data(data) == {"k\ufffd": ["x", ("\ufffd",)], "same": 1}
    clean = {"a": ["b"]}
    assert encodable_data(clean) is clean


def test_encodable_stream_follows_stdout_and_answers_terminal_questions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout = strict_stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    stream = EncodableStream()
    assert stream.write("x\udcff\n") == 3
    assert written(stdout) == "x\ufffd\n"
    assert stream.encoding == "utf-8" and stream.isatty() is False


@pytest.mark.parametrize("use_async", [False, True])
def test_a_listener_failing_on_streamed_model_text_is_not_blamed_on_the_model(use_async: bool) -> None:
    def broken(event: events.Event) -> None:
        if isinstance(event, events.ModelTextDelta):
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    agent = CodeAgent(
        tools=[],
        model=ScriptedModel([FINISH]),
        executor="local",
        verbosity_level=0,
        stream_outputs=True,
        listeners=[broken],
    )
    with pytest.warns(RuntimeWarning, match="UnicodeEncodeError"):
        if use_async:
            import asyncio

            result = asyncio.run(agent.arun("stream", return_full_result=True))
        else:
            result = agent.run("stream", return_full_result=True)
    assert result.state == "success" and result.output == "done", result.error


def test_run_id_is_on_the_run_started_event_and_the_result_and_differs_per_run():
    from codeloop import CodeAgent
    from codeloop.events import RunStarted
    from codeloop.testing import ScriptedModel

    seen: list[str] = []
    agent = CodeAgent(
        model=ScriptedModel(["```python\nfinal_answer(1)\n```"] * 2),
        executor="local",
        listeners=[lambda e: seen.append(e.run_id) if isinstance(e, RunStarted) else None],
    )
    first = agent.run("a", return_full_result=True)
    second = agent.run("b", return_full_result=True)
    assert [first.run_id, second.run_id] == seen
    assert len(first.run_id) == 32 and first.run_id != second.run_id
    assert first.run_id < second.run_id or first.run_id[:12] == second.run_id[:12]
    assert first.to_dict()["run_id"] == first.run_id
