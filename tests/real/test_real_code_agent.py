"""CodeAgent on the real local model, in the default sandbox: real multi-step runs with tools."""

from __future__ import annotations

import ast
import re

import pytest
from real_checks import assert_error_reached_model, assert_sound_run

from codeloop import CodeAgent, tool
from codeloop.memory import ActionStep
from codeloop.testing.local_server import LocalModelServer, ServerExchange

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(900)]

GENERATION = {"temperature": 0, "seed": 0, "max_tokens": 400}


@tool
def get_stock_price(ticker: str) -> float:
    """
    Retrieves the current stock price for a given ticker symbol.

    Args:
        ticker: The stock ticker symbol (e.g., 'AAPL', 'GOOGL')

    Returns:
        The current stock price in USD
    """
    return 175.42


@tool
def calculate_portfolio_value(ticker: str, shares: int, price: float) -> dict:
    """
    Calculates the total value and 1-year gain/loss of a stock position.

    Args:
        ticker: Stock ticker symbol
        shares: Number of shares held
        price: Current price per share

    Returns:
        Dictionary with total_value and percentage fields
    """
    return {"ticker": ticker, "total_value": shares * price, "shares": shares}


def position_value(answer: object) -> float:
    """The value an answer states: a number, or the `total_value` of the tool's dict returned as it is."""
    if isinstance(answer, dict):
        answer = answer["total_value"]
    return float(answer)  # type: ignore[arg-type]


def test_stock_portfolio_task_is_solved_in_the_sandbox(llama_server: LocalModelServer) -> None:
    exchanges: list[ServerExchange] = []
    with CodeAgent(
        [get_stock_price, calculate_portfolio_value],
        model=llama_server.model(record=exchanges, **GENERATION),
        max_steps=4,
        verbosity_level=0,
    ) as agent:
        result = agent.run("What is my position of 100 AAPL shares worth?", return_full_result=True)
    assert_sound_run(result, 4, exchanges)
    assert result.state == "success"
    assert position_value(result.output) == pytest.approx(17542.0)
    # The value came from the tools, called inside the sandbox and run on the host.
    code = "\n".join(s.code_action or "" for s in result.steps if isinstance(s, ActionStep))
    assert "get_stock_price(" in code


class _Flaky:
    """A tool that fails on its first call, as a real service sometimes does."""

    def __init__(self) -> None:
        self.calls = 0


def _assigned_names(code: str, before_line: int | None = None) -> set[str]:
    """Names the top-level statements of `code` assign (those above `before_line`, when given)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if before_line is not None and node.end_lineno is not None and node.end_lineno >= before_line:
            break
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


def test_a_failing_step_goes_back_to_the_model_and_keeps_the_variables(
    llama_server: LocalModelServer,
) -> None:
    flaky = _Flaky()

    @tool
    def convert_currency(amount: float, currency: str) -> float:
        """Converts an amount in USD to another currency at today's rate.

        Args:
            amount: The amount in USD.
            currency: The target currency code, e.g. 'EUR'.
        """
        flaky.calls += 1
        if flaky.calls == 1:
            raise ConnectionError("the exchange-rate service is busy; call convert_currency again")
        return round(amount * 0.5, 2)

    exchanges: list[ServerExchange] = []
    with CodeAgent(
        [get_stock_price, convert_currency],
        model=llama_server.model(record=exchanges, **GENERATION),
        max_steps=5,
        verbosity_level=0,
    ) as agent:
        result = agent.run(
            "What are 100 AAPL shares worth in EUR? Get the price with get_stock_price, then convert the USD value "
            "with convert_currency.",
            return_full_result=True,
            additional_args={"owner": "Ada"},
        )
        assert_sound_run(result, 5, exchanges)
        actions = [s for s in result.steps if isinstance(s, ActionStep)]
        failed = [s for s in actions if s.error is not None]
        assert flaky.calls >= 1, "the model never called convert_currency"
        assert failed and failed[0].error_type == "AgentExecutionError"
        assert "exchange-rate service is busy" in failed[0].error
        # The error went back to the model: it is in the conversation of every later call.
        later = agent.memory.to_messages()
        assert_error_reached_model([m.text for m in later], failed[0].error)
        # Variables from before the failure are still there: the task's own and those the model's earlier
        # steps assigned, read straight from the sandbox the model used.
        expected = {"owner"}
        for step in actions:
            if step is failed[0]:
                line = re.search(r"line (\d+)", step.error or "")
                if line:  # what the failing step assigned above the line that failed stays too
                    expected |= _assigned_names(step.code_action or "", int(line.group(1)))
                break
            if step.error is None:
                expected |= _assigned_names(step.code_action or "")
        check = agent.executor.run(f"print(sorted(n for n in {sorted(expected)!r} if n in globals()))")
        assert check.logs.strip() == repr(sorted(expected))
    # No answer is asserted: at temperature 0 this model converts the share price instead of the position
    # (87.71 instead of 8771.0), a mistake of its own that the framework must not hide or cause.
