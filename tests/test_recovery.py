"""After a failing step the model sees what it needs to fix it, in every executor.

A real 1.5B model indexed a tool's result with a guessed key (`flight["departure"]`), got `KeyError: 'departure'`
and sent the same code three times: the error named the missing key but not the ones that exist. The error now
also lists the step's tool calls with what they returned, and the variables defined so far.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop import CodeAgent, tool
from codeloop.testing import ScriptedModel
from codeloop.tool_log import ToolCallLog, preview

KINDS = ["local", pytest.param("sandbox", marks=needs_bwrap)]


@tool
def get_flight(number: str) -> dict:
    """A flight's airports and local times.

    Args:
        number: The flight number.
    """
    return {"from": "LIS", "to": "OSL", "dep_local": "09:40", "arr_local": "14:05"}


def code(src: str) -> str:
    return f"Thought: next.\n```python\n{src}\n```"


def run(kind: str, *steps: str) -> Any:
    agent = CodeAgent(tools=[get_flight], model=ScriptedModel([code(s) for s in steps]), executor=kind,
                      verbosity_level=0, max_steps=len(steps))  # fmt: skip
    with agent:
        return agent.run("When does QX 1 land?", return_full_result=True)


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_step_shows_what_its_tool_calls_returned_and_the_variables(kind: str) -> None:
    result = run(
        kind,
        "legs = 2\nname = 'QX 1'\nflight = get_flight(name)\nprint(flight['departure'])",
        "final_answer(flight['arr_local'])",
    )
    assert result.output == "14:05"
    error = result.steps[1].error
    assert "KeyError: 'departure'" in error
    assert (
        "get_flight('QX 1') -> {'from': 'LIS', 'to': 'OSL', 'dep_local': '09:40', 'arr_local': '14:05'}"
        in error
    )
    assert "legs = 2" in error and "name (str, 4 characters)" in error and "flight (dict, 4 keys)" in error
    assert "get_flight (" not in error  # tools are not listed as variables


@pytest.mark.parametrize("kind", KINDS)
def test_a_step_that_calls_tools_and_prints_nothing_shows_their_results(kind: str) -> None:
    result = run(kind, "flight = get_flight('QX 1')", "final_answer(flight['to'])")
    assert "get_flight('QX 1') -> {'from': 'LIS'" in result.steps[1].observations
    assert result.output == "OSL"


@pytest.mark.parametrize("kind", KINDS)
def test_a_step_that_prints_keeps_only_its_own_output(kind: str) -> None:
    result = run(kind, "print(get_flight('QX 1')['to'])", "final_answer(1)")
    assert result.steps[1].observations.strip() == "OSL"


def test_preview_renders_only_builtin_data_and_stays_short() -> None:
    class Sneaky:
        def __repr__(self) -> str:  # must never run: it could be agent code
            raise AssertionError("repr ran")

    assert preview({"a": [1, 2.5, None], "b": Sneaky()}) == "{'a': [1, 2.5, None], 'b': <Sneaky>}"
    long = preview(list(range(10_000)))
    assert len(long) < 400 and long.endswith("more]")
    assert preview(10**1000) == "<int of 3322 bits>"


def test_the_log_keeps_distinct_calls_and_names_a_call_that_raised() -> None:
    log = ToolCallLog()

    def boom(x: int) -> int:
        raise ValueError("no")

    wrapped = log.wrap("boom", boom)
    with pytest.raises(ValueError):
        wrapped(3)
    with pytest.raises(ValueError):
        wrapped(3)
    assert log.render() == "Tool calls in this step returned:\n- boom(3) raised ValueError"
    log.clear()
    assert log.render() == ""


def test_the_last_of_several_steps_tells_the_model_so() -> None:
    model = ScriptedModel([code("x = 1\nprint(x)"), code("final_answer(x)")])
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=2)
    assert agent.run("t") == 1
    first, last = model.requests
    assert "This is your last step" in last.messages[-1].text
    assert all("This is your last step" not in m.text for m in first.messages)


def test_a_single_step_run_gets_no_last_step_notice() -> None:
    model = ScriptedModel([code("final_answer(3)")])
    assert CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=1).run("t") == 3
    assert all("last step" not in m.text for m in model.requests[0].messages)


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_steps_the_forced_answer_is_the_value_the_code_computed(kind: str) -> None:
    model = ScriptedModel([code("total = 17542.0\nprint(total)"), code("final_answer(total)")])
    agent = CodeAgent(tools=[], model=model, executor=kind, verbosity_level=0, max_steps=1)
    with agent:
        result = agent.run("t", return_full_result=True)
    assert result.state == "max_steps" and result.output == 17542.0 and isinstance(result.output, float)
    assert "calls final_answer" in model.requests[-1].messages[-1].text


def test_a_forced_answer_without_code_falls_back_to_its_text_and_failing_code_gives_none() -> None:
    model = ScriptedModel([code("print(1)"), "The answer is 1."])
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=1)
    result = agent.run("t", return_full_result=True)
    assert result.state == "max_steps" and result.output == "The answer is 1."
    for reply in (code("final_answer(undefined_name)"), code("x = 2")):
        model = ScriptedModel([code("print(1)"), reply])
        agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=1)
        result = agent.run("t", return_full_result=True)
        assert result.state == "max_steps" and result.output is None  # code is not an answer


def test_a_tool_calling_forced_answer_written_as_a_call_gives_its_value() -> None:
    from codeloop import ToolCallingAgent

    model = ScriptedModel(['{"name": "get_flight", "arguments": {"number": "QX 1"}}',
                           '{"name": "final_answer", "arguments": {"answer": "14:05"}}'])  # fmt: skip
    agent = ToolCallingAgent(tools=[get_flight], model=model, verbosity_level=0, max_steps=1)
    result = agent.run("t", return_full_result=True)
    assert result.state == "max_steps" and result.output == "14:05"


def test_code_repeated_with_the_same_output_runs_and_is_called_out() -> None:
    same = "print('no departure key')"
    model = ScriptedModel([code(same), code(same), code("final_answer(2)")])
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=3)
    result = agent.run("t", return_full_result=True)
    first, second = result.steps[1].observations, result.steps[2].observations
    assert "same code as your previous step" not in first
    assert second.startswith("no departure key") and "same code as your previous step" in second


@pytest.mark.parametrize("kind", KINDS)
def test_a_repeated_step_that_hid_its_tool_results_is_shown_them_every_time(kind: str) -> None:
    # The real model looped on `if "departure" in flight: ... else: print(...)`: its own output never showed
    # the data, so the repeat note now carries what the step's tool calls returned.
    same = "flight = get_flight('QX 1')\nprint('no departure key' if 'departure' not in flight else 'ok')"
    result = run(kind, same, same, same, "final_answer(flight['dep_local'])")
    notes = [result.steps[n].observations for n in (2, 3)]
    for note in notes:
        assert note.startswith("no departure key") and "same code as your previous step" in note
        assert note.endswith("Tool calls in this step returned:\n- get_flight('QX 1') -> {'from': 'LIS', "
                             "'to': 'OSL', 'dep_local': '09:40', 'arr_local': '14:05'}")  # fmt: skip
    assert "same code" not in result.steps[1].observations and result.output == "09:40"


def test_repeated_code_with_new_output_is_not_called_out() -> None:
    poll = "try:\n    n += 1\nexcept NameError:\n    n = 1\nprint(n)"
    model = ScriptedModel([code(poll), code(poll), code("final_answer(n)")])
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, max_steps=3)
    result = agent.run("t", return_full_result=True)
    assert result.output == 2 and "same code" not in result.steps[2].observations


def test_an_answer_before_any_tool_call_is_refused_once_then_accepted() -> None:
    model = ScriptedModel([code("final_answer('13:00')"), code("final_answer('13:00')")])
    agent = CodeAgent(tools=[get_flight], model=model, executor="local", verbosity_level=0, max_steps=3,
                      tools_before_answer=True)  # fmt: skip
    result = agent.run("t", return_full_result=True)
    assert result.output == "13:00" and result.state == "success"
    assert (
        "no tool has been called in this run" in result.steps[1].error
        and "get_flight" in result.steps[1].error
    )


def test_an_answer_after_a_tool_call_is_accepted_at_once_and_the_check_can_be_turned_off() -> None:
    model = ScriptedModel([code("final_answer(get_flight('QX 1')['to'])")])
    agent = CodeAgent(tools=[get_flight], model=model, executor="local", verbosity_level=0)
    assert agent.run("t", return_full_result=True).steps[1].error is None
    model = ScriptedModel([code("final_answer(1)")])
    agent = CodeAgent(
        tools=[get_flight], model=model, executor="local", verbosity_level=0, tools_before_answer=False
    )
    assert agent.run("t") == 1
    model = ScriptedModel([code("final_answer(1)")])  # no tools: nothing to fetch
    assert CodeAgent(tools=[], model=model, executor="local", verbosity_level=0).run("t") == 1


def test_a_tool_calling_answer_before_any_tool_call_is_refused_once() -> None:
    from codeloop import ToolCallingAgent

    answer = '{"name": "final_answer", "arguments": {"answer": "13:00"}}'
    model = ScriptedModel([answer, '{"name": "get_flight", "arguments": {"number": "QX 1"}}',
                           '{"name": "final_answer", "arguments": {"answer": "14:05"}}'])  # fmt: skip
    agent = ToolCallingAgent(tools=[get_flight], model=model, verbosity_level=0, tools_before_answer=True)
    assert agent.run("t") == "14:05"
    assert "no tool has been called" in (agent.memory.action_steps[0].error or "")


def test_a_forced_tool_calling_answer_that_copies_an_error_gives_no_answer() -> None:
    from codeloop import ToolCallingAgent

    script = [
        '{"name": "get_flight", "arguments": {"number": "{{flight}}"}}',
        '{"name": "final_answer", "arguments": {"answer": "not run: \'{{flight}}\' stands for a result you do not '
        'have yet."}}',
    ]
    agent = ToolCallingAgent(tools=[get_flight], model=ScriptedModel(script), verbosity_level=0, max_steps=1)
    result = agent.run("t", return_full_result=True)
    assert result.state == "max_steps" and result.output is None


@tool
def list_orders(customer: str) -> list:
    """A customer's orders.

    Args:
        customer: The customer's name.
    """
    return [{"id": "A-1", "total_eur": 12.5}, {"id": "A-2", "total_eur": 3.0}]


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_error_names_the_keys_the_tool_results_have_right_under_it(kind: str) -> None:
    # A real 1.5B model read the KeyError line, ignored the tool-call lines further down and guessed again.
    agent = CodeAgent(tools=[get_flight, list_orders], executor=kind, verbosity_level=0, max_steps=2,
                      model=ScriptedModel([code("f = get_flight('QX 1')\no = list_orders('Ann')\nprint(f['departure'])"),
                                           code("final_answer(f['dep_local'])")]))  # fmt: skip
    with agent:
        result = agent.run("When does QX 1 leave?", return_full_result=True)
    assert result.output == "09:40"
    lines = result.steps[1].error.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("KeyError: 'departure'"))
    assert lines[at + 1] == (
        "'departure' is not a key of what get_flight returned; its keys are: 'from', 'to', 'dep_local', 'arr_local'."
    )
    assert lines[at + 2] == (
        "'departure' is not a key of the dicts in what list_orders returned; their keys are: 'id', 'total_eur'."
    )


def test_the_key_hint_skips_results_that_have_the_key_and_errors_that_are_not_key_errors() -> None:
    log = ToolCallLog()
    log.wrap("get_flight", get_flight)("QX 1")
    assert log.missing_key_hint("Error on line 1: x\nKeyError: 'to'") == ""
    assert log.missing_key_hint("Error on line 1: x\nTypeError: 'to'") == ""
    assert "its keys are" in log.missing_key_hint("Error on line 1: x\nKeyError: 'gate'")
    log.clear()
    assert log.missing_key_hint("Error on line 1: x\nKeyError: 'gate'") == ""


def test_look_before_answer_holds_back_once_an_answer_computed_from_unseen_tool_data() -> None:
    # The real model fetched trip expenses, summed a key it never printed and answered in the same step.
    blind = "f = get_flight('QX 1')\nfinal_answer(f['arr_local'])"
    model = ScriptedModel([code(blind), code("final_answer(f['arr_local'])")])
    agent = CodeAgent(tools=[get_flight], model=model, executor="local", verbosity_level=0, max_steps=3,
                      look_before_answer=True)  # fmt: skip
    result = agent.run("t", return_full_result=True)
    assert result.output == "14:05" and len([s for s in result.steps if hasattr(s, "code_action")]) == 2
    held = result.steps[1].observations
    assert "get_flight('QX 1') -> {'from': 'LIS'" in held
    assert (
        held.endswith("fix the code and compute it again.")
        and "final_answer('14:05') is not accepted yet" in held
    )


@pytest.mark.parametrize("look", [True, False])
def test_an_answer_after_the_data_was_shown_or_with_the_option_off_is_accepted_at_once(look: bool) -> None:
    seen = [code("f = get_flight('QX 1')\nprint(f)"), code("final_answer(get_flight('QX 1')['arr_local'])")]
    agent = CodeAgent(tools=[get_flight], model=ScriptedModel(seen), executor="local", verbosity_level=0,
                      look_before_answer=look)  # fmt: skip
    assert agent.run("t") == "14:05" and len(agent.memory.action_steps) == 2
    blind = [code("final_answer(get_flight('QX 1')['arr_local'])")]
    agent = CodeAgent(tools=[get_flight], model=ScriptedModel(blind * 2), executor="local", verbosity_level=0,
                      look_before_answer=look)  # fmt: skip
    assert agent.run("t") == "14:05" and len(agent.memory.action_steps) == (2 if look else 1)
