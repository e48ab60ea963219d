"""Bad agent settings fail when the agent is built, with a message naming what is wrong and how to fix it.

Every mistake here used to be accepted silently and surface only after a (paid) model call, or never.
"""

from __future__ import annotations

from typing import Any

import pytest

from codeloop import CodeAgent, Tool, ToolCallingAgent, tool
from codeloop.errors import ToolDefinitionError
from codeloop.testing import ScriptedModel
from codeloop.tools import FinalAnswerTool


def named(name: str) -> Tool:
    def anything(text: str) -> str:
        """Echo the text.

        Args:
            text: Any text.
        """
        return text

    return tool(name=name)(anything)


def scripted() -> ScriptedModel:
    return ScriptedModel(["```python\nfinal_answer(1)\n```"])


def helper_agent(name: str) -> ToolCallingAgent:
    return ToolCallingAgent(tools=[], model=scripted(), name=name, description="helps", verbosity_level=0)


AGENTS = [CodeAgent, ToolCallingAgent]


@pytest.mark.parametrize("agent_class", AGENTS)
def test_two_tools_with_one_name_are_refused(agent_class: Any) -> None:
    with pytest.raises(ToolDefinitionError, match=r"two tools are named 'lookup'.*rename one"):
        agent_class(tools=[named("lookup"), named("lookup")], model=scripted())


@pytest.mark.parametrize("agent_class", AGENTS)
def test_a_managed_agent_named_like_a_tool_is_refused(agent_class: Any) -> None:
    with pytest.raises(ToolDefinitionError, match=r"managed agent 'helper' has the name of a tool.*rename"):
        agent_class(tools=[named("helper")], model=scripted(), managed_agents=[helper_agent("helper")])
    with pytest.raises(ToolDefinitionError, match=r"two managed agents are named 'helper'"):
        agent_class(
            tools=[], model=scripted(), managed_agents=[helper_agent("helper"), helper_agent("helper")]
        )


@pytest.mark.parametrize("agent_class", AGENTS)
def test_a_tool_named_final_answer_is_refused_unless_it_is_the_real_one(agent_class: Any) -> None:
    with pytest.raises(ToolDefinitionError, match=r"named 'final_answer'.*final_answer_checks"):
        agent_class(tools=[named("final_answer")], model=scripted())

    class LoudFinalAnswer(FinalAnswerTool):
        def forward(self, answer: Any) -> Any:
            """Shout the answer."""
            return str(answer).upper()

    agent = agent_class(tools=[LoudFinalAnswer()], model=scripted(), verbosity_level=0)
    assert isinstance(agent.tools["final_answer"], LoudFinalAnswer)


@pytest.mark.parametrize("name", ["print", "len", "open", "sum"])
def test_a_code_agent_refuses_a_tool_that_would_hide_a_builtin(name: str) -> None:
    with pytest.raises(
        ToolDefinitionError, match=rf"named '{name}', like the Python builtin {name}\(\).*Rename"
    ):
        CodeAgent(tools=[named(name)], model=scripted())
    # a tool-calling agent's model calls tools by name in JSON: no Python builtin is hidden there
    assert name in ToolCallingAgent(tools=[named(name)], model=scripted(), verbosity_level=0).tools


def test_a_code_agent_refuses_a_tool_named_like_a_module_its_code_may_import() -> None:
    with pytest.raises(ToolDefinitionError, match=r"named 'math', like the module .*import math"):
        CodeAgent(tools=[named("math")], model=scripted())
    with pytest.raises(ToolDefinitionError, match=r"named 'numpy'"):
        CodeAgent(tools=[named("numpy")], model=scripted(), additional_authorized_imports=["numpy.linalg"])
    with pytest.raises(ToolDefinitionError, match=r"managed agent 'helper'|'print'"):
        CodeAgent(tools=[], model=scripted(), managed_agents=[helper_agent("print")])


def test_an_explicit_tool_replaces_the_base_tool_of_the_same_name() -> None:
    mine = named("web_search")
    agent = CodeAgent(tools=[mine], model=scripted(), add_base_tools=True, verbosity_level=0)
    assert agent.tools["web_search"] is mine and "visit_webpage" in agent.tools
