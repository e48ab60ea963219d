"""ToolCallingAgent on the real local model, both ways llama-cpp-python's server returns tool calls.

- Its default (the GGUF's own chat template) shows the tools to the model but returns the model's calls as
  text (`<tool_call>{...}</tool_call>`); codeloop parses them from the reply.
- `--chat_format chatml-function-calling` returns native `tool_calls`, but only when the request carries
  `tool_choice` ("auto" here) and never when streaming.
"""

from __future__ import annotations

import pytest
from real_checks import assert_sound_run
from test_real_code_agent import GENERATION, calculate_portfolio_value, get_stock_price

from codeloop import ToolCallingAgent
from codeloop.memory import ActionStep
from codeloop.testing.local_server import LocalModelServer, ServerExchange

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(900)]

TASK = "What is my position of 100 AAPL shares worth?"


def _run(server: LocalModelServer, **model_kwargs: object) -> tuple[object, list[ServerExchange]]:
    exchanges: list[ServerExchange] = []
    agent = ToolCallingAgent(
        [get_stock_price, calculate_portfolio_value],
        model=server.model(record=exchanges, **GENERATION, **model_kwargs),
        max_steps=5,
        verbosity_level=0,
    )
    return agent.run(TASK, return_full_result=True), exchanges


def test_tool_calls_written_as_text_are_run(llama_server: LocalModelServer) -> None:
    result, exchanges = _run(llama_server)
    assert_sound_run(result, 5, exchanges)  # type: ignore[arg-type]
    actions = [s for s in result.steps if isinstance(s, ActionStep)]  # type: ignore[attr-defined]
    # This server never sends native calls: every call was read from the reply's text.
    assert all(not e.message.get("tool_calls") for e in exchanges)
    assert not actions[0].tool_calls and actions[0].error is None
    # The calls parsed from the text ran, and their results went back as an observation.
    assert (actions[0].observations or "").startswith(
        ("get_stock_price(", "calculate_portfolio_value(")
    )  # name(args) -> result
    # No answer is asserted: at temperature 0 this model calls calculate_portfolio_value with a price it
    # made up (150) instead of looking it up first.


def test_native_tool_calls_are_run(llama_server_native_tools: LocalModelServer) -> None:
    result, exchanges = _run(llama_server_native_tools, tool_choice="auto")
    assert_sound_run(result, 5, exchanges)  # type: ignore[arg-type]
    actions = [s for s in result.steps if isinstance(s, ActionStep)]  # type: ignore[attr-defined]
    assert exchanges[0].message.get("tool_calls"), "chatml-function-calling sent no native tool call"
    first = actions[0]
    assert first.tool_calls, "the first step's calls were not read from tool_calls"
    # Every native call got its result under its own call id, and the run went on past it: the results were
    # sent back as `tool` messages the server accepted.
    assert [r.call_id for r in first.tool_results] == [c.id for c in first.tool_calls]
    for call, outcome in zip(first.tool_calls, first.tool_results, strict=True):
        expected = {"get_stock_price": "175.42", "calculate_portfolio_value": "'total_value'"}.get(call.name)
        assert expected is not None and expected in outcome.output
    assert len(exchanges) >= 2
