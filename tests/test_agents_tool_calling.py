"""ToolCallingAgent: native tool calls, concurrent execution, JSON-in-text fallback, argument validation."""

from __future__ import annotations

import threading
from typing import Any

from codeloop import ToolCallingAgent, tool
from codeloop.testing import ScriptedModel

_active = 0
_max_active = 0
_lock = threading.Lock()


_both_inside = threading.Condition(_lock)


@tool
def slow_lookup(key: str) -> str:
    """Looks up a key slowly.

    Args:
        key: The key to look up.
    """
    global _active, _max_active
    with _lock:
        _active += 1
        _max_active = max(_max_active, _active)
        _both_inside.notify_all()
        # Stay inside until the other call is inside too (so the overlap does not depend on how fast threads
        # start on a busy machine); calls run one after another would each wait the whole time, and see 1.
        _both_inside.wait_for(lambda: _max_active >= 2, timeout=30)
        _active -= 1
    return f"value-of-{key}"


@tool
def multiply(a: int, b: int) -> int:
    """Multiplies two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def make_agent(script: Any, **kwargs: Any) -> ToolCallingAgent:
    return ToolCallingAgent(
        tools=[slow_lookup, multiply], model=ScriptedModel(script), verbosity_level=0, **kwargs
    )


def test_several_native_calls_in_one_reply_run_concurrently() -> None:
    global _max_active
    _max_active = 0
    script = [
        {"content": None, "tool_calls": [call("slow_lookup", key="a"), call("slow_lookup", key="b")]},
        {"tool_calls": [call("final_answer", answer="done")]},
    ]
    agent = make_agent(script)
    assert agent.run("two lookups") == "done"
    assert _max_active == 2  # both calls were inside the tool at the same time
    step = agent.memory.action_steps[0]
    assert [r.output for r in step.tool_results] == ["value-of-a", "value-of-b"]
    second = agent.model.requests[1].messages  # type: ignore[attr-defined]
    tool_msgs = [m for m in second if m.role == "tool"]
    assert [m.tool_call_id for m in tool_msgs] == [c.id for c in step.tool_calls]
    assert agent.model.requests[0].tools[0]["name"] == "slow_lookup"  # type: ignore[attr-defined]
    assert agent.model.requests[0].tools[0]["parameters"]["properties"]["key"]["type"] == "string"  # type: ignore[attr-defined]


def test_json_in_text_fallback_for_models_without_native_calls() -> None:
    script = [
        'I will multiply. {"name": "multiply", "arguments": {"a": 6, "b": 7}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert agent.run("text calls") == 42
    assert "42" in (agent.memory.action_steps[0].observations or "")
    # text calls are answered as a user observation, never as orphan tool messages
    assert all(m.role != "tool" for m in agent.model.requests[1].messages)  # type: ignore[attr-defined]


def test_bad_arguments_come_back_as_an_observation() -> None:
    script = [
        {"tool_calls": [call("multiply", a="six", b=7)]},
        {"tool_calls": [call("multiply", a=6)]},
        {"tool_calls": [{"name": "multiply", "arguments": "{not json"}]},
        {"tool_calls": [call("no_such_tool")]},
        {"tool_calls": [call("multiply", a=6, b=7)]},
        {"tool_calls": [call("final_answer", answer=42)]},
    ]
    agent = make_agent(script)
    assert agent.run("validate") == 42
    results = [s.tool_results[0] for s in agent.memory.action_steps]
    assert all(r.is_error for r in results[:4]) and not results[4].is_error
    assert "a" in results[0].output and "multiply" in results[0].output
    assert "b" in results[1].output
    assert "not a valid JSON object" in results[2].output
    assert "Unknown tool 'no_such_tool'" in results[3].output and "multiply" in results[3].output


def test_failing_tool_is_an_observation_not_a_crash() -> None:
    @tool
    def broken(x: int) -> int:
        """Always fails.

        Args:
            x: Ignored.
        """
        raise RuntimeError("backend down")

    agent = ToolCallingAgent(
        tools=[broken],
        model=ScriptedModel(
            [{"tool_calls": [call("broken", x=1)]}, {"tool_calls": [call("final_answer", answer="ok")]}]
        ),
        verbosity_level=0,
    )
    assert agent.run("survive") == "ok"
    assert "backend down" in agent.memory.action_steps[0].tool_results[0].output


def test_no_tool_call_at_all_gets_the_format_help() -> None:
    agent = make_agent(["Just chatting.", {"tool_calls": [call("final_answer", answer=1)]}])
    assert agent.run("format") == 1
    assert agent.memory.action_steps[0].error_type == "AgentParsingError"


def test_add_base_tools_gives_the_default_toolbox() -> None:
    from codeloop import CodeAgent

    tc = ToolCallingAgent(tools=[], model=ScriptedModel([]), add_base_tools=True, verbosity_level=0)
    assert {"web_search", "visit_webpage", "wikipedia_search", "python_interpreter", "final_answer"} <= set(
        tc.tools
    )
    code = CodeAgent(tools=[], model=ScriptedModel([]), add_base_tools=True, verbosity_level=0)
    assert {"web_search", "visit_webpage", "wikipedia_search"} <= set(code.tools)
    assert "python_interpreter" not in code.tools  # a CodeAgent already runs code
    assert "def web_search(" in code.memory.system_prompt.system_prompt


def test_final_answer_sent_with_other_calls_is_refused_and_the_others_run() -> None:
    # The model wrote its answer (41) before multiply's result came back; the run must not end on it.
    script = [
        {"tool_calls": [call("multiply", a=6, b=7), call("final_answer", answer=41)]},
        {"tool_calls": [call("final_answer", answer=42)]},
    ]
    agent = make_agent(script)
    result = agent.run("mixed reply", return_full_result=True)
    assert result.output == 42 and len(agent.model.requests) == 2  # type: ignore[attr-defined]
    first = agent.memory.action_steps[0]
    assert first.action_output is None and not first.is_final_answer
    multiplied, refused = first.tool_results
    assert multiplied.output == "42" and not multiplied.is_error
    assert refused.is_error and refused.name == "final_answer"
    assert "alone" in refused.output and "after" in refused.output
    # The model is told, in the tool message answering its final_answer call.
    seen = [m for m in agent.model.requests[1].messages if m.role == "tool"]  # type: ignore[attr-defined]
    assert any("final_answer" in m.text and "alone" in m.text for m in seen)


def test_final_answer_written_as_text_beside_another_call_is_dropped_unseen() -> None:
    # Shown a refusal, the real 1.5B model copied it into its next final_answer (5 of 6 steps of one run), so a
    # text answer written before the results is not run and not mentioned: the model sees the results only.
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n{"name": "final_answer", "arguments": {"answer": 1}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert agent.run("text calls, mixed") == 42
    assert agent.memory.action_steps[0].observations == "multiply(a=6, b=7) -> 42"


def test_each_result_is_shown_beside_its_arguments() -> None:
    # Three temperatures from one tool are anonymous numbers unless each shows the city it was asked for.
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n{"name": "multiply", "arguments": {"a": 2, "b": 3}}',
        '{"name": "final_answer", "arguments": {"answer": 48}}',
    ]
    agent = make_agent(script)
    assert agent.run("t") == 48
    assert agent.memory.action_steps[0].observations == "multiply(a=6, b=7) -> 42\nmultiply(a=2, b=3) -> 6"
    assert "multiply(a=2, b=3) -> 6" in agent.model.requests[1].messages[-1].text  # type: ignore[attr-defined]


def test_an_argument_that_stands_for_another_calls_result_is_refused_plainly() -> None:
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n'
        '{"name": "multiply", "arguments": {"a": "{{result_of_multiply}}", "b": 2}}',
        '{"name": "multiply", "arguments": {"a": 42, "b": 2}}',
        '{"name": "final_answer", "arguments": {"answer": 84}}',
    ]
    agent = make_agent(script)
    assert agent.run("t") == 84
    shown = agent.memory.action_steps[0].observations or ""
    assert "multiply(a=6, b=7) -> 42" in shown
    assert "'{{result_of_multiply}}' stands for a result you do not have yet" in shown
    assert "valid integer" not in shown


def test_final_answer_alone_after_results_ends_the_run_at_once() -> None:
    agent = make_agent(
        [{"tool_calls": [call("multiply", a=2, b=3)]}, {"tool_calls": [call("final_answer", answer=6)]}]
    )
    assert agent.run("alone") == 6
    assert agent.memory.action_steps[1].is_final_answer


def test_a_call_inside_malformed_json_is_not_run_and_the_model_is_told_why() -> None:
    multiplied: list[int] = []

    @tool
    def counted_multiply(a: int, b: int) -> int:
        """Multiplies two integers, counting calls.

        Args:
            a: The first factor.
            b: The second factor.
        """
        multiplied.append(a * b)
        return a * b

    script = [
        '{"calls": [{"name": "counted_multiply", "arguments": {"a": 6, "b": 7}},]}',
        '{"name": "final_answer", "arguments": {"answer": "gave up"}}',
    ]
    agent = ToolCallingAgent(tools=[counted_multiply], model=ScriptedModel(script), verbosity_level=0)
    assert agent.run("malformed") == "gave up"
    assert multiplied == []
    first = agent.memory.action_steps[0]
    assert first.error_type == "AgentParsingError" and "not valid JSON" in (first.error or "")
    seen = "\n".join(m.text for m in agent.model.requests[1].messages)  # type: ignore[attr-defined]
    assert "not valid JSON" in seen and '"name": <tool name>' in seen


def test_an_echoed_placeholder_call_is_not_run() -> None:
    # The prompt keeps its literal example call: a template with angle-bracket placeholders and "final_answer
    # alone" made Qwen2.5-Coder-1.5B answer its first step in prose instead of a call (tests/real, temperature 0).
    # An echo of the example names no real tool, so it is not run and the model is shown the real tools.
    script = [
        '{"name": "tool_name", "arguments": {"argument": "value"}}',
        '{"name": "final_answer", "arguments": {"answer": 1}}',
    ]
    agent = make_agent(script)
    assert agent.run("echo") == 1
    observation = agent.memory.action_steps[0].observations or ""
    assert "placeholder" in observation and "multiply" in observation


def test_final_answer_written_without_a_name_ends_the_run_with_its_value() -> None:
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}',
        "Final answer([42])",
    ]
    agent = make_agent(script)
    assert agent.run("final answer as text") == [42]
    assert agent.memory.action_steps[1].is_final_answer
    bare = make_agent(['{"answer": {"product": 42}}'])
    assert bare.run("bare answer object") == {"product": 42}


def test_auto_format_switches_to_text_calls_once_the_model_writes_them() -> None:
    # llama.cpp's server takes `tools` into the chat template but answers calls as text: keep one format.
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert agent.run("text calls") == 42
    first, second = agent.model.requests  # type: ignore[attr-defined]
    assert first.tools and not second.tools  # no schemas once the model has shown it writes calls as text
    system = second.messages[0].text
    assert "- multiply(a: integer, b: integer): Multiplies two integers." in system
    assert "    a: The first factor." in system
    assert "If you cannot make native tool calls" not in system and "literal values" in system
    assert "If you cannot make native tool calls" in first.messages[0].text
    assert agent.text_calls


def test_native_calls_keep_the_native_format_and_prose_does_not_switch_it() -> None:
    script = [
        "Let me think about it first.",  # no call at all: not evidence of text calls
        {"tool_calls": [call("multiply", a=6, b=7)]},
        {"tool_calls": [call("final_answer", answer=42)]},
    ]
    agent = make_agent(script)
    assert agent.run("native calls") == 42
    assert all(r.tools for r in agent.model.requests)  # type: ignore[attr-defined]
    assert not agent.text_calls


def test_text_format_never_sends_tool_schemas_and_native_never_switches() -> None:
    agent = make_agent(['{"name": "final_answer", "arguments": {"answer": 1}}'], tool_call_format="text")
    assert agent.run("t") == 1 and not agent.model.requests[0].tools  # type: ignore[attr-defined]
    agent = make_agent(
        ['{"name": "final_answer", "arguments": {"answer": 1}}'] * 2, tool_call_format="native"
    )
    assert agent.run("t") == 1 and not agent.text_calls


def test_an_unknown_tool_call_format_is_refused_at_construction() -> None:
    import pytest

    with pytest.raises(ValueError, match="tool_call_format='json' is not one of 'auto', 'native', 'text'"):
        make_agent([], tool_call_format="json")


def test_a_broken_final_answer_beside_real_calls_does_not_stop_them() -> None:
    # The 1.5B model's first reply: a real call, then final_answer with a variable name as its value.
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n'
        '{"name": "final_answer", "arguments": {"answer": totalPrice}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert agent.run("t") == 42
    first = agent.memory.action_steps[0]
    assert first.error is None and first.observations == "multiply(a=6, b=7) -> 42"
    assert agent.text_calls  # it wrote its calls as text


def test_a_broken_call_that_mentions_a_tool_switches_auto_to_text_calls() -> None:
    agent = make_agent(['{"name": "multiply", "arguments": {"a": 6, "b": }}',
                        '{"name": "final_answer", "arguments": {"answer": 1}}'])  # fmt: skip
    assert agent.run("t") == 1
    assert agent.memory.action_steps[0].error and agent.text_calls
    assert not agent.model.requests[1].tools  # type: ignore[attr-defined]


def test_a_final_answer_that_copies_an_error_message_is_refused_with_the_results_so_far() -> None:
    # The 1.5B model answered with the error it had just been shown, then with the refusal, five times over;
    # the refusal now ends with the results it has, so the last thing it reads is data, not prose.
    script = [
        '{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n{"name": "multiply", "arguments": {"a": "<x>", "b": 7}}',
        '{"name": "final_answer", "arguments": {"answer": "Error: not run: \'<x>\' stands for a result you do '
        'not have yet."}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert agent.run("t") == 42
    refusal = agent.memory.action_steps[1].observations or ""
    assert "text of an error message" in refusal
    assert refusal.endswith("The results you have:\nmultiply(a=6, b=7) -> 42")


def test_a_long_answer_that_merely_mentions_an_error_is_kept() -> None:
    answer = "The sensor log shows Error 42 at boot, then a clean run."
    agent = make_agent(['{"name": "final_answer", "arguments": {"answer": "' + answer + '"}}'])
    assert agent.run("t") == answer


def test_an_error_copied_with_its_lines_rewrapped_is_still_refused() -> None:
    script = [
        '{"name": "multiply", "arguments": {"a": "six", "b": 7}}',
        '{"name": "final_answer", "arguments": {"answer": "Error: Invalid arguments for tool \'multiply\': - \'a\': '
        'Input should be a valid integer"}}',
        '{"name": "final_answer", "arguments": {"answer": 42}}',
    ]
    agent = make_agent(script)
    assert "Invalid arguments for tool 'multiply':\n" in (
        agent.run("t") and agent.memory.action_steps[0].observations
    )
    assert agent.memory.action_steps[-1].action_output == 42
