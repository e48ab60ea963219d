"""CodeAgent end to end with a scripted model and the real local executor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from codeloop import CodeAgent, events, tool
from codeloop.errors import AgentError, AgentGenerationError, AgentInterrupted
from codeloop.memory import ActionStep, PlanningStep, RunResult
from codeloop.testing import ScriptedModel, ScriptRequest


def code(src: str, thought: str = "Thought: next step.") -> str:
    return f"{thought}\n```python\n{src}\n```"


def make_agent(script: Any, **kwargs: Any) -> CodeAgent:
    kwargs.setdefault("verbosity_level", 0)
    kwargs.setdefault("executor", "local")
    return CodeAgent(tools=kwargs.pop("tools", []), model=ScriptedModel(script), **kwargs)


def test_variables_persist_and_final_answer_ends_the_run() -> None:
    agent = make_agent([code("x = 6 * 7\nprint('x is', x)"), code("final_answer(x + 1)")])
    assert agent.run("compute") == 43
    steps = agent.memory.action_steps
    assert [s.step_number for s in steps] == [1, 2]
    assert "x is 42" in (steps[0].observations or "")
    # the second model call saw the first observation
    second = agent.model.requests[1].messages  # type: ignore[attr-defined]
    assert any("x is 42" in m.text for m in second)


def test_final_answer_returns_objects_unchanged_even_inside_try_except() -> None:
    src = "try:\n    final_answer({'a': [1, 2]})\nexcept Exception:\n    print('swallowed')"
    agent = make_agent([code(src)])
    assert agent.run("object answer") == {"a": [1, 2]}


def test_last_expression_value_is_reported() -> None:
    agent = make_agent([code("y = 5\ny * 3"), code("final_answer(y)")])
    agent.run("expr")
    assert "15" in (agent.memory.action_steps[0].observations or "")


def test_reply_without_code_becomes_a_format_observation_and_run_continues() -> None:
    agent = make_agent(["I think the answer is 4.", code("final_answer(4)")])
    assert agent.run("no code first") == 4
    first = agent.memory.action_steps[0]
    assert first.error_type == "AgentParsingError"
    seen = agent.model.requests[1].messages  # type: ignore[attr-defined]
    assert any("```python" in m.text and "No code block" in m.text for m in seen)


def test_code_error_is_fed_back_and_run_goes_on() -> None:
    agent = make_agent([code("print('before')\n1 / 0"), code("final_answer('recovered')")])
    assert agent.run("errors") == "recovered"
    step = agent.memory.action_steps[0]
    assert step.error and "ZeroDivisionError" in step.error
    assert "before" in (step.observations or "")
    assert any("ZeroDivisionError" in m.text for m in agent.model.requests[1].messages)  # type: ignore[attr-defined]


def test_max_steps_forces_a_last_answer_and_says_so() -> None:
    agent = make_agent([code("print(1)"), code("print(2)"), "The answer is probably 3."], max_steps=2)
    result = agent.run("never finishes", return_full_result=True)
    assert isinstance(result, RunResult)
    assert result.state == "max_steps"
    assert result.output == "The answer is probably 3."
    assert "max_steps=2" in (result.error or "")
    assert len(agent.model.requests) == 3  # type: ignore[attr-defined]


def test_full_result_has_steps_usage_and_timing() -> None:
    script = [
        {"content": code("a = 1"), "usage": {"input_tokens": 100, "output_tokens": 10}},
        {"content": code("final_answer(a)"), "usage": {"input_tokens": 150, "output_tokens": 12}},
    ]
    result = make_agent(script).run("usage", return_full_result=True)
    assert result.state == "success" and result.output == 1
    assert result.token_usage.input_tokens == 250 and result.token_usage.output_tokens == 22
    assert [type(s).__name__ for s in result.steps] == [
        "TaskStep",
        "ActionStep",
        "ActionStep",
        "FinalAnswerStep",
    ]
    assert result.timing.duration is not None and result.timing.duration >= 0
    assert result.to_dict()["output"] == 1


def test_empty_task_is_rejected_before_any_model_call() -> None:
    agent = make_agent([code("final_answer(1)")])
    with pytest.raises(ValueError, match="task is empty"):
        agent.run("   ")
    assert agent.model.requests == []  # type: ignore[attr-defined]


def test_model_failure_ends_the_run_and_keeps_the_steps() -> None:
    def script(request: ScriptRequest) -> str:
        if request.index == 0:
            return code("kept = 'value'")
        raise ConnectionError("provider unreachable after retries")

    agent = make_agent(script)
    with pytest.raises(AgentGenerationError) as info:
        agent.run("fails on step 2")
    result = info.value.result  # type: ignore[attr-defined]
    assert result.state == "error" and "unreachable" in result.error
    assert len([s for s in result.steps if isinstance(s, ActionStep)]) == 2
    assert result.steps[1].code_action == "kept = 'value'"
    full = make_agent(script).run("again", return_full_result=True)
    assert full.state == "error"


def test_final_answer_checks_reject_then_accept() -> None:
    def must_be_even(answer: Any, memory: Any) -> bool:
        return answer % 2 == 0

    agent = make_agent([code("final_answer(3)"), code("final_answer(4)")], final_answer_checks=[must_be_even])
    assert agent.run("even please") == 4
    assert "must_be_even" in (agent.memory.action_steps[0].error or "")


def test_planning_interval_makes_initial_plan_and_updates() -> None:
    script = [
        "1. Facts...\n4. Plan: compute.\n<end_plan>",
        code("v = 1"),
        code("v += 1"),
        "Updated plan: answer now.",
        code("final_answer(v)"),
    ]
    agent = make_agent(script, planning_interval=2)
    assert agent.run("plan it") == 2
    plans = [s for s in agent.memory.steps if isinstance(s, PlanningStep)]
    assert [p.plan for p in plans] == ["1. Facts...\n4. Plan: compute.", "Updated plan: answer now."]
    assert "Before you start, write a plan" in agent.model.requests[0].messages[0].text  # type: ignore[attr-defined]
    assert "Update your plan" in agent.model.requests[3].messages[-1].text  # type: ignore[attr-defined]


def test_step_callbacks_and_interrupt_keep_steps() -> None:
    seen: list[int] = []

    def stop_after_first(step: Any, agent: CodeAgent) -> None:
        if isinstance(step, ActionStep):
            seen.append(step.step_number)
            agent.interrupt()

    agent = make_agent([code("a = 1"), code("final_answer(a)")], step_callbacks=[stop_after_first])
    with pytest.raises(AgentInterrupted) as info:
        agent.run("interrupt me")
    assert seen == [1]
    assert info.value.result.state == "interrupted"  # type: ignore[attr-defined]
    assert len(agent.memory.action_steps) == 1


def test_run_reset_false_continues_the_conversation() -> None:
    agent = make_agent([code("final_answer(10)"), code("final_answer(prev * 2)")])
    agent.run("first")
    agent.executor.send_variables({"prev": 10})
    assert agent.run("second, using the first", reset=False) == 20
    tasks = [m.text for m in agent.model.requests[1].messages if m.role == "user"]  # type: ignore[attr-defined]
    assert any("first" in t for t in tasks) and any("second" in t for t in tasks)


def test_additional_args_become_variables() -> None:
    agent = make_agent([code("final_answer(data['n'] * factor)")])
    assert agent.run("use args", additional_args={"data": {"n": 4}, "factor": 3}) == 12
    assert "factor" in agent.model.requests[0].messages[-1].text  # type: ignore[attr-defined]


def test_images_reach_the_model_as_image_parts() -> None:
    agent = make_agent([code("final_answer('seen')")])
    agent.run("describe", images=[b"\x89PNG-bytes"])
    content = agent.model.requests[0].messages[1].content  # type: ignore[attr-defined]
    assert isinstance(content, list) and content[1]["type"] == "image" and content[1]["data"]


@tool
def get_weather(city: str) -> dict:
    """Gets the weather for a city.

    Args:
        city: The city name.
    """
    return {"city": city, "temp_c": 21}


def test_tools_return_objects_that_stay_objects_in_code() -> None:
    script = [
        code("w = get_weather('Paris')\nprint(type(w).__name__, w['temp_c'])"),
        code("final_answer(w['temp_c'] + 1)"),
    ]
    agent = make_agent(script, tools=[get_weather])
    assert agent.run("weather") == 22
    assert "dict 21" in (agent.memory.action_steps[0].observations or "")
    system = agent.model.requests[0].messages[0].text  # type: ignore[attr-defined]
    assert "def get_weather(city: str)" in system and "Gets the weather" in system


def test_managed_agent_is_called_like_a_tool_and_returns_a_report() -> None:
    researcher = make_agent(
        [code("final_answer('Paris has 2.1M people')")], name="researcher", description="Finds facts."
    )
    manager = make_agent(
        [
            code("report = researcher(task='population of Paris')\nprint(report)"),
            code("final_answer(report)"),
        ],
        managed_agents=[researcher],
    )
    answer = manager.run("ask the researcher")
    assert isinstance(answer, str) and "Paris has 2.1M people" in answer
    assert "researcher" in manager.model.requests[0].messages[0].text  # type: ignore[attr-defined]
    assert researcher.model.requests[0].messages[1].text.endswith("population of Paris")  # type: ignore[attr-defined]


def test_managed_agent_needs_name_and_description() -> None:
    with pytest.raises(ValueError, match="name and a description"):
        make_agent([], managed_agents=[make_agent([])])


def test_stream_yields_typed_events_in_order() -> None:
    agent = make_agent([code("print('hi')"), code("final_answer(1)")], stream_outputs=True)
    kinds = [type(e).__name__ for e in agent.run("stream", stream=True)]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert "ModelTextDelta" in kinds and "CodeAction" in kinds and "Observation" in kinds
    assert kinds.index("FinalAnswer") < kinds.index("RunFinished")
    assert kinds.count("StepStarted") == 2


def test_arun_and_astream_drive_the_same_loop() -> None:
    agent = make_agent([code("z = 2"), code("final_answer(z * 21)")])
    assert asyncio.run(agent.arun("async")) == 42

    async def collect() -> list[events.Event]:
        agent2 = make_agent([code("final_answer('streamed')")], stream_outputs=True)
        return [e async for e in agent2.astream("astream")]

    out = asyncio.run(collect())
    finished = out[-1]
    assert isinstance(finished, events.RunFinished) and finished.result.output == "streamed"
    assert any(isinstance(e, events.ModelTextDelta) for e in out)


def test_listeners_receive_every_event() -> None:
    got: list[str] = []
    agent = make_agent([code("final_answer(0)")], listeners=[lambda e: got.append(type(e).__name__)])
    agent.run("listen")
    assert got[0] == "RunStarted" and got[-1] == "RunFinished"


def test_model_spec_string_and_unknown_provider() -> None:
    with pytest.raises(ValueError, match="openai"):
        CodeAgent(model="nosuchprovider:x")


def test_console_renders_a_run_without_breaking_it(capsys: pytest.CaptureFixture[str]) -> None:
    agent = make_agent([code("print('visible')"), code("final_answer(5)")], verbosity_level=2)
    assert agent.run("console") == 5
    out = capsys.readouterr().out
    assert "Step 1" in out and "visible" in out and "Final answer: 5" in out
    agent.replay()
    assert "Step 2" in capsys.readouterr().out


def test_max_tokens_budget_stops_the_run_cleanly() -> None:
    agent = make_agent([code("final_answer(1)")], max_tokens=1)
    result = agent.run("budget", return_full_result=True)
    assert result.state == "success"  # first call is allowed: nothing used yet
    agent2 = make_agent([code("print(1)"), code("final_answer(2)")], max_tokens=5)
    result2 = agent2.run("budget stops", return_full_result=True)
    assert result2.state == "budget" and "max_tokens" in (result2.error or "")
    with pytest.raises(AgentError, match="max_tokens"):
        make_agent([code("print(1)"), code("final_answer(2)")], max_tokens=5).run("raises")


def test_structured_outputs_ask_for_json_code_actions() -> None:
    import json

    script = [
        "not json at all",
        json.dumps({"thought": "compute", "code": "v = 7 * 6"}),
        json.dumps({"thought": "done", "code": "final_answer(v)"}),
    ]
    agent = make_agent(script, use_structured_outputs=True)
    assert agent.run("structured") == 42
    request = agent.model.requests[0]  # type: ignore[attr-defined]
    assert request.response_format["json_schema"]["schema"]["required"] == ["thought", "code"]
    assert request.stop is None
    assert '{"thought": "...", "code": "..."}' in request.messages[0].text
    assert "Write one Python code block" not in request.messages[0].text
    assert agent.memory.action_steps[0].error_type == "AgentParsingError"
    assert "not valid JSON" in (agent.memory.action_steps[0].error or "")


def test_agent_save_and_from_folder_round_trip(tmp_path: Any) -> None:
    from codeloop.models.openai import OpenAIModel

    agent = CodeAgent(
        tools=[get_weather],
        model=OpenAIModel("gpt-4o", api_base="http://127.0.0.1:9/v1", api_key="secret-key-never-saved"),
        max_steps=7,
        instructions="Be terse.",
        verbosity_level=0,
        executor="local",
        additional_authorized_imports=["json"],
    )
    folder = agent.save(tmp_path / "agent")
    saved = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    assert "secret-key-never-saved" not in saved
    loaded = CodeAgent.from_folder(folder, trust_remote_code=True)
    assert isinstance(loaded, CodeAgent)
    assert loaded.max_steps == 7 and loaded.instructions == "Be terse."
    assert "json" in loaded.authorized_imports
    assert set(loaded.tools) == {"get_weather"}
    assert loaded.tools["get_weather"]("Oslo") == {"city": "Oslo", "temp_c": 21}


class _PrintingExecutor:
    """An executor that prints in two chunks while it runs, to check that chunks reach the event stream live."""

    def __init__(self) -> None:
        self.on_output: Any = None
        self.seen_callback_during_run = False

    def send_tools(self, tools: dict[str, Any]) -> None: ...
    def send_variables(self, variables: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None: ...

    def run(self, code: str) -> Any:
        from codeloop.executors.base import ExecutionResult

        self.seen_callback_during_run = self.on_output is not None
        if self.on_output:
            self.on_output("chunk one\n")
            self.on_output("chunk two\n")
        return ExecutionResult(
            output="done", logs="chunk one\nchunk two\n", is_final_answer="final_answer" in code
        )


def test_printed_output_streams_as_execution_log_events() -> None:
    executor = _PrintingExecutor()
    agent = make_agent([code("final_answer('x')")], executor=executor, stream_outputs=True)
    logs = [e.text for e in agent.run("stream logs", stream=True) if isinstance(e, events.ExecutionLog)]
    assert logs == ["chunk one\n", "chunk two\n"]
    assert executor.seen_callback_during_run and executor.on_output is None  # detached afterwards

    async def collect() -> list[str]:
        agent2 = make_agent([code("final_answer('y')")], executor=_PrintingExecutor(), stream_outputs=True)
        return [e.text async for e in agent2.astream("async logs") if isinstance(e, events.ExecutionLog)]

    assert asyncio.run(collect()) == ["chunk one\n", "chunk two\n"]


def test_prompt_states_imports_per_executor() -> None:
    local = make_agent([], additional_authorized_imports=["json"])
    assert "You may import these modules: collections, datetime, itertools, json" in local.system_prompt()
    sandboxed = make_agent([], executor="sandbox")
    assert "any installed module" in sandboxed.system_prompt()


def test_last_expression_of_an_agent_defined_class_is_rendered_inside_the_step() -> None:
    src = "class Point:\n    def __repr__(self):\n        return 'Point(1, 2)'\np = Point()\np"
    agent = make_agent([code(src), code("final_answer('ok')")])
    assert agent.run("repr") == "ok"
    assert "Point(1, 2)" in (agent.memory.action_steps[0].observations or "")
