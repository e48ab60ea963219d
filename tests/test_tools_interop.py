"""LangChain tools as codeloop tools (the real langchain-core), and their use from an agent."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core", reason="LangChain interop needs the `langchain` extra")

from langchain_core.tools import StructuredTool
from langchain_core.tools import tool as langchain_tool

from codeloop import ToolCallingAgent
from codeloop.errors import AgentToolCallError, ToolDefinitionError
from codeloop.testing import ScriptedModel
from codeloop.tools import LangChainTool, Tool


@langchain_tool
def multiply(a: int, b: int = 2) -> int:
    """Multiply two integers."""
    return a * b


async def _slow_upper(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


def test_langchain_tool_becomes_a_codeloop_tool() -> None:
    wrapped = Tool.from_langchain(multiply)
    assert isinstance(wrapped, LangChainTool)
    assert wrapped.name == "multiply" and wrapped.description == "Multiply two integers."
    assert wrapped.inputs["a"]["type"] == "integer"
    assert wrapped.required_inputs == ["a"]
    assert wrapped.inputs["b"]["default"] == 2
    assert wrapped(a=3) == 6 and wrapped(4, 5) == 20
    assert wrapped.validate_arguments({"a": "7"}) == {"a": 7}
    with pytest.raises(AgentToolCallError, match="'a': missing required argument"):
        wrapped.validate_arguments({"b": 1})
    assert wrapped.to_code_prompt().startswith("def multiply(a: int, b: int = 2) -> Any:")
    assert asyncio.run(wrapped.acall(a=2, b=21)) == 42


def test_async_only_langchain_tool() -> None:
    upper = StructuredTool.from_function(coroutine=_slow_upper, name="shout", description="Upper-case text.")
    wrapped = Tool.from_langchain(upper)
    assert asyncio.run(wrapped.acall(text="hi")) == "HI"


def test_not_a_langchain_tool() -> None:
    with pytest.raises(ToolDefinitionError, match="is not a LangChain tool"):
        Tool.from_langchain(object())


def test_agent_calls_a_langchain_tool() -> None:
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "multiply", "arguments": {"a": 6, "b": 7}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "42"}}]},
        ]
    )
    agent = ToolCallingAgent(tools=[Tool.from_langchain(multiply)], model=model, verbosity_level=0)
    assert agent.run("What is 6 times 7?") == "42"
    observations = [getattr(step, "observations", None) or "" for step in agent.memory.steps]
    assert any(o.strip().endswith("42") and "multiply(a=6, b=7) -> " in o for o in observations)
