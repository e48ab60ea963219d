"""Bad agent settings fail when the agent is built, with a message naming what is wrong and how to fix it.

Every mistake here used to be accepted silently and surface only after a (paid) model call, or never.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest

from codeloop import CodeAgent, Tool, ToolCallingAgent, tool
from codeloop.errors import ExecutionError, MissingExtraError, ModelConfigurationError, ToolDefinitionError
from codeloop.models import AnthropicModel, InferenceClientModel, OpenAIModel
from codeloop.models import model as model_from_spec
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sandbx", r"unknown executor 'sandbx'; did you mean 'sandbox'\? Valid names: 'sandbox', 'local'"),
        (
            "kubernetes",
            r"unknown executor 'kubernetes'\. Valid names: 'sandbox', 'local', 'docker', 'e2b', 'modal'",
        ),
    ],
)
def test_an_unknown_executor_name_fails_before_any_model_call(spec: str, message: str) -> None:
    model = scripted()
    with pytest.raises(ValueError, match=message):
        CodeAgent(tools=[], model=model, executor=spec)
    assert model.requests == []


def test_an_executor_name_is_read_without_regard_to_case_or_spaces() -> None:
    agent = CodeAgent(tools=[], model=scripted(), executor=" Local ", verbosity_level=0)
    assert agent.executor_spec == "local"
    assert "collections, datetime" in agent.system_prompt()  # the in-process executor's allow-list is shown
    with agent:
        assert agent.run("go") == 1


def test_an_object_that_is_not_an_executor_is_refused_at_construction() -> None:
    with pytest.raises(
        TypeError, match=r"executor must be one of 'sandbox'.*or an Executor instance.*got int"
    ):
        CodeAgent(tools=[], model=scripted(), executor=3)


@pytest.mark.parametrize(("kind", "module"), [("docker", "docker"), ("e2b", "e2b"), ("modal", "modal")])
def test_an_executor_whose_sdk_is_missing_fails_at_construction_with_the_install_line(
    kind: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # how Python marks a module that cannot be imported
    with pytest.raises(
        MissingExtraError, match=rf'needs the `{module}` SDK: pip install "codeloop\[{kind}\]"'
    ):
        CodeAgent(tools=[], model=scripted(), executor=kind)
    with pytest.raises(ImportError):  # still an ImportError for code that catches those
        CodeAgent(tools=[], model=scripted(), executor=kind)


@pytest.mark.parametrize(
    ("factory", "module", "extra"),
    [
        (lambda: OpenAIModel("gpt-4o", api_key="k"), "openai", "openai"),
        (lambda: model_from_spec("openai:gpt-4o", api_key="k"), "openai", "openai"),
        (lambda: model_from_spec("ollama:qwen2.5-coder"), "openai", "openai"),
        (lambda: AnthropicModel("claude-sonnet-4-5", api_key="k"), "anthropic", "anthropic"),
        (lambda: model_from_spec("anthropic:claude-sonnet-4-5", api_key="k"), "anthropic", "anthropic"),
        (lambda: InferenceClientModel("Qwen/Qwen2.5-Coder-32B-Instruct"), "huggingface_hub", "hf"),
    ],
)
def test_a_model_whose_sdk_is_missing_fails_when_it_is_created(
    factory: Any, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModelConfigurationError, match=rf'pip install "codeloop\[{extra}\]"'):
        factory()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_steps", 0, "max_steps must be above 0, got 0"),
        ("max_steps", -3, "max_steps must be above 0"),
        ("max_tokens", -1, r"max_tokens must be above 0 \(or None for no limit\), got -1"),
        ("max_tokens", 0, "max_tokens must be above 0"),
        ("max_cost_usd", -0.5, "max_cost_usd must be above 0"),
        ("max_cost_usd", float("nan"), "max_cost_usd must be above 0"),
        ("max_duration_s", -10, "max_duration_s must be above 0"),
        ("planning_interval", 0, "planning_interval must be above 0"),
        ("max_print_outputs_length", -1, "max_print_outputs_length must be above 0"),
    ],
)
def test_negative_or_zero_budgets_are_refused_at_construction(setting: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CodeAgent(tools=[], model=scripted(), **{setting: value})
    if setting != "max_print_outputs_length":
        with pytest.raises(ValueError, match=message):
            ToolCallingAgent(tools=[], model=scripted(), **{setting: value})


def test_a_budget_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"max_tokens must be an integer .*got '100'"):
        ToolCallingAgent(tools=[], model=scripted(), max_tokens="100")
    with pytest.raises(TypeError, match=r"max_steps must be an integer, got 2.5"):
        ToolCallingAgent(tools=[], model=scripted(), max_steps=2.5)


def test_a_run_refuses_a_bad_max_steps_instead_of_ignoring_it() -> None:
    model = scripted()
    agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_steps must be above 0"):
            agent.run("go", max_steps=bad)
    assert model.requests == []
    assert agent.run("go", max_steps=1) == 1


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("timeout", -1, r"timeout must be above 0 \(or None for no limit\), got -1"),
        ("timeout", 0, "timeout must be above 0"),
        ("retry_deadline_s", -5.0, "retry_deadline_s must be above 0"),
        ("requests_per_minute", -60, "requests_per_minute must be above 0"),
        ("max_retries", -1, "max_retries must be 0 or more, got -1"),
        ("retry_base_delay", -0.1, "retry_base_delay must be 0 or more"),
    ],
)
def test_a_model_refuses_negative_timeouts_and_retry_budgets(setting: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenAIModel("gpt-4o", api_key="k", **{setting: value})
    with pytest.raises(ValueError, match=message):
        AnthropicModel("claude-sonnet-4-5", api_key="k", **{setting: value})
    assert OpenAIModel("gpt-4o", api_key="k", max_retries=0, timeout=None).timeout is None


class CountingExecutor:
    """A real LocalExecutor that counts how often it is closed."""

    def __init__(self) -> None:
        from codeloop.executors import LocalExecutor

        self.inner = LocalExecutor()
        self.closed = 0

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.inner.send_tools(tools)

    def send_variables(self, variables: dict[str, Any]) -> None:
        self.inner.send_variables(variables)

    def run(self, code: str) -> Any:
        return self.inner.run(code)

    def close(self) -> None:
        self.closed += 1
        self.inner.close()

    def __enter__(self) -> CountingExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.mark.parametrize("agent_class", AGENTS)
def test_every_agent_closes_and_works_as_a_context_manager(agent_class: Any) -> None:
    reply: Any = "```python\nfinal_answer(1)\n```"
    if agent_class is ToolCallingAgent:
        reply = {"tool_calls": [{"name": "final_answer", "arguments": {"answer": 1}}]}
    with agent_class(tools=[], model=ScriptedModel([reply, reply]), verbosity_level=0) as agent:
        assert agent.run("first") == 1
    agent.close()  # a second close is harmless
    assert agent.run("after close, a run starts afresh") == 1
    agent.close()


def test_closing_an_agent_stops_the_worker_it_started_and_its_managed_agents_workers() -> None:
    helper = CodeAgent(
        tools=[], model=scripted(), executor="sandbox", name="helper", description="helps", verbosity_level=0
    )
    manager = ToolCallingAgent(tools=[], model=scripted(), managed_agents=[helper], verbosity_level=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # reduced isolation where bubblewrap is missing
        helper.executor.run("x = 1")
    worker = helper.executor
    with manager:
        pass
    with pytest.raises(ExecutionError, match="executor is closed"):
        worker.run("x")


def test_an_executor_passed_in_stays_open_for_its_owner() -> None:
    executor = CountingExecutor()
    with CodeAgent(tools=[], model=scripted(), executor=executor, verbosity_level=0) as agent:
        assert agent.run("go") == 1
    assert executor.closed == 0 and executor.run("final_answer(2)").output == 2
    executor.close()
