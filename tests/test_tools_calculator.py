"""The calculator: plain arithmetic only, bounded, and usable by a ToolCallingAgent that cannot compute."""

from __future__ import annotations

import pytest

from codeloop import ToolCallingAgent
from codeloop.testing import ScriptedModel
from codeloop.tools import CalculatorTool
from codeloop.tools.calculator import CalculatorError, calculate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(3 * 12.5 + 2 * 4.25) * 0.92", 42.32),
        ("round(sum([71200, 64800, 69000]) / 3, 2)", 68333.33),
        ("max([1, 7, 3]) - min(4, 2)", 5),
        ("-2 ** 3 + 17 // 5 + 17 % 5 + abs(-1.5) + len([1, 2])", -8 + 3 + 2 + 1.5 + 2),
    ],
)
def test_arithmetic_is_evaluated(expression: str, value: float) -> None:
    assert CalculatorTool()(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('id')", "is not allowed"),
        ("().__class__.__mro__", "is not allowed"),
        ("price * 3", "'price' is not allowed"),
        ("10 ** 10 ** 10", "exponent"),
        ("1 / 0", "division by zero"),
        ("3 +", "not an arithmetic expression"),
        ("round(2.5, ndigits=1)", "positional"),
        ("[1] * 3", "numbers, not lists"),
        ("1" * 3000, "limit"),
        ("True + 1", "is not allowed"),
    ],
)
def test_anything_but_bounded_arithmetic_is_refused_with_a_reason(expression: str, problem: str) -> None:
    with pytest.raises(CalculatorError, match=problem):
        calculate(expression)


def test_float_noise_is_hidden() -> None:
    assert CalculatorTool()("0.1 + 0.2") == 0.3


def test_a_tool_calling_agent_with_the_calculator_computes_through_it() -> None:
    script = [
        '{"name": "calculate", "arguments": {"expression": "(71200 + 64800) / 2"}}',
        '{"name": "final_answer", "arguments": {"answer": 68000.0}}',
    ]
    model = ScriptedModel(script)
    agent = ToolCallingAgent(tools=[], model=model, calculator=True, verbosity_level=0)
    assert agent.run("mean of two salaries") == 68000.0
    assert "Compute with the `calculate` tool" in agent.system_prompt()
    assert (
        agent.memory.action_steps[0].observations == "calculate(expression='(71200 + 64800) / 2') -> 68000.0"
    )
    plain = ToolCallingAgent(tools=[], model=ScriptedModel([]), verbosity_level=0)
    assert "calculate" not in plain.tools and "calculate" not in plain.system_prompt()


def test_a_bad_expression_comes_back_to_the_model_as_an_error_it_can_fix() -> None:
    script = [
        '{"name": "calculate", "arguments": {"expression": "total / 2"}}',
        '{"name": "calculate", "arguments": {"expression": "10 / 2"}}',
        '{"name": "final_answer", "arguments": {"answer": 5}}',
    ]
    agent = ToolCallingAgent(tools=[], model=ScriptedModel(script), calculator=True, verbosity_level=0)
    assert agent.run("t") == 5
    assert "'total' is not allowed" in (agent.memory.action_steps[0].observations or "")
