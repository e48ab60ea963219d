"""Saving and loading whole agents: class, model spec without keys, tools, managed agents, settings."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent
from codeloop.agent_io import describe_model, load_agent, save_agent
from codeloop.testing import ScriptedModel
from codeloop.tools import ToolLoadError
from codeloop.tools.web import VisitWebpageTool

USER_MODULE = textwrap.dedent(
    '''
    from codeloop.tools import tool


    @tool
    def get_stock_price(ticker: str) -> float:
        """The latest price of a stock (canned values, for tests).

        Args:
            ticker: The stock symbol, e.g. "AAPL".
        """
        return {"AAPL": 190.5, "MSFT": 410.25}[ticker]


    @tool
    def calculate_portfolio_value(ticker: str, shares: int) -> dict:
        """The value of a position.

        Args:
            ticker: The stock symbol.
            shares: How many shares.
        """
        return {"ticker": ticker, "total_value": shares * get_stock_price(ticker), "shares": shares}
    '''
)


@pytest.fixture(scope="module")
def user_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("agentcode")
    (folder / "portfolio_tools.py").write_text(USER_MODULE)
    sys.path.insert(0, str(folder))
    try:
        import portfolio_tools

        yield portfolio_tools
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("portfolio_tools", None)


def _manager(user_tools: Any) -> CodeAgent:
    from codeloop.models import OpenAIModel

    model = OpenAIModel(
        "gpt-4o", api_base="http://127.0.0.1:9/v1", api_key="sk-very-secret-123", temperature=0.2
    )
    analyst = ToolCallingAgent(
        tools=[user_tools.get_stock_price],
        model=model,
        name="stock_analyst",
        description="Looks up stock prices.",
        max_steps=4,
    )
    return CodeAgent(
        tools=[user_tools.get_stock_price, VisitWebpageTool()],
        model=model,
        managed_agents=[analyst],
        max_steps=7,
        planning_interval=3,
        instructions="Answer in euros.",
        additional_authorized_imports=["statistics"],
        name="manager",
        description="Manages a portfolio.",
        verbosity_level=0,
        step_callbacks=[lambda step: None],
    )


def test_save_writes_everything_but_secrets(user_tools: Any, tmp_path: Path) -> None:
    folder = save_agent(_manager(user_tools), tmp_path / "manager")
    text = (folder / "agent.json").read_text()
    assert "sk-very-secret-123" not in text
    metadata = json.loads(text)
    assert metadata["class"] == "codeloop:CodeAgent"
    assert metadata["model"]["spec"] == "openai:gpt-4o"
    assert metadata["model"]["options"]["api_base"] == "http://127.0.0.1:9/v1"
    assert metadata["model"]["options"]["temperature"] == 0.2
    assert metadata["tools"] == ["get_stock_price", "visit_webpage"]
    assert metadata["managed_agents"] == ["stock_analyst"]
    settings = metadata["settings"]
    assert settings["max_steps"] == 7 and settings["planning_interval"] == 3
    assert settings["instructions"] == "Answer in euros."
    assert settings["additional_authorized_imports"] == ["statistics"]
    assert settings["executor"] == "sandbox"  # the CodeAgent default
    assert metadata["not_saved"] == ["step_callbacks"]
    assert (folder / "tools" / "get_stock_price" / "tool.py").is_file()
    assert (folder / "tools" / "visit_webpage" / "tool.py").read_text().startswith("from codeloop.tools.web")
    sub = json.loads((folder / "managed_agents" / "stock_analyst" / "agent.json").read_text())
    assert sub["class"] == "codeloop:ToolCallingAgent" and sub["tools"] == ["get_stock_price"]
    assert "final_answer" not in sub["tools"]  # the tool-calling agent adds its own


def test_load_round_trips_the_agent(user_tools: Any, tmp_path: Path) -> None:
    original = _manager(user_tools)
    loaded = load_agent(save_agent(original, tmp_path / "manager"))
    assert type(loaded) is CodeAgent
    assert set(loaded.tools) == set(original.tools)
    assert loaded.max_steps == 7 and loaded.planning_interval == 3
    assert loaded.instructions == "Answer in euros." and loaded.name == "manager"
    assert loaded.additional_authorized_imports == ["statistics"]
    assert loaded.system_prompt() == original.system_prompt()
    assert loaded.model.model_id == "gpt-4o" and loaded.model.api_base == "http://127.0.0.1:9/v1"  # type: ignore[attr-defined]
    assert loaded.model.kwargs == {"temperature": 0.2}  # type: ignore[attr-defined]
    analyst = loaded.managed_agents["stock_analyst"]
    assert type(analyst) is ToolCallingAgent and analyst.max_steps == 4
    assert loaded.tools["get_stock_price"](ticker="MSFT") == 410.25


def test_loaded_agent_runs_with_a_given_model(user_tools: Any, tmp_path: Path) -> None:
    folder = save_agent(_manager(user_tools), tmp_path / "manager")
    model = ScriptedModel(
        [
            "Let me look it up.\n```python\nprice = get_stock_price('AAPL')\nprint(price)\n```",
            "```python\nfinal_answer(round(price * 10, 2))\n```",
        ]
    )
    agent = load_agent(folder, model=model, max_steps=3, planning_interval=None)
    assert agent.max_steps == 3  # overrides win over saved settings
    assert agent.run("What are 10 AAPL shares worth?") == 1905.0
    assert agent.managed_agents["stock_analyst"].model is model


def test_load_errors(user_tools: Any, tmp_path: Path) -> None:
    with pytest.raises(ToolLoadError, match="agent.json is missing"):
        load_agent(tmp_path)
    folder = save_agent(_manager(user_tools), tmp_path / "manager")
    with pytest.raises(ToolLoadError, match="holds a CodeAgent, not a ToolCallingAgent"):
        load_agent(folder, expected_class=ToolCallingAgent)
    metadata = json.loads((folder / "agent.json").read_text())
    metadata["settings"]["warp_speed"] = 9
    (folder / "agent.json").write_text(json.dumps(metadata))
    with pytest.raises(ToolLoadError, match="does not accept the saved settings \\['warp_speed'\\]"):
        load_agent(folder)


def test_scripted_models_need_a_model_on_load(tmp_path: Path) -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel(["x"]), verbosity_level=0)
    assert describe_model(agent.model)["class"] == "codeloop.testing.scripted:ScriptedModel"
    folder = save_agent(agent, tmp_path / "a")
    with pytest.raises(ToolLoadError, match="cannot be re-created.*Pass model=... when loading"):
        load_agent(folder)
    assert isinstance(load_agent(folder, model=ScriptedModel(["y"])), CodeAgent)


def test_a_folder_saved_before_tool_calling_agent_moved_still_loads(user_tools: Any, tmp_path: Path) -> None:
    folder = save_agent(_manager(user_tools), tmp_path / "manager")
    saved = folder / "managed_agents" / "stock_analyst" / "agent.json"
    data = json.loads(saved.read_text())
    data["class"] = "codeloop.agents:ToolCallingAgent"  # what earlier versions wrote
    saved.write_text(json.dumps(data))
    assert type(load_agent(folder).managed_agents["stock_analyst"]) is ToolCallingAgent


def test_a_chosen_compaction_policy_survives_save_and_load(tmp_path: Path) -> None:
    from codeloop.compaction import DEFAULT_COMPACTION, MaskObservations, Summarize
    from codeloop.models import OpenAIModel

    model = OpenAIModel("gpt-4o", api_base="http://127.0.0.1:9/v1", api_key="sk-test")
    policy = MaskObservations(keep_last=6, every=2, context_window=32_768, condense_actions=False)
    agent = CodeAgent(model=model, executor="local", verbosity_level=0, compaction=policy)
    loaded = load_agent(save_agent(agent, tmp_path / "masked"))
    assert loaded.compaction == policy
    cheap = OpenAIModel("gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="sk-test")
    summarize = Summarize(keep_last=4, model=cheap, max_words=120, token_counter=len)
    agent = ToolCallingAgent([], model=model, verbosity_level=0, compaction=summarize)
    folder = save_agent(agent, tmp_path / "summarize")
    metadata = json.loads((folder / "agent.json").read_text())
    assert metadata["not_saved"] == ["compaction.token_counter"]  # a function: said, not silently dropped
    assert "sk-test" not in (folder / "agent.json").read_text()
    loaded = load_agent(folder)
    assert isinstance(loaded.compaction, Summarize)
    assert (loaded.compaction.keep_last, loaded.compaction.every, loaded.compaction.max_words) == (4, 8, 120)
    assert loaded.compaction.model.model_id == "gpt-4o-mini" and loaded.compaction.token_counter is None
    # the default and None come back as they were
    for value in (DEFAULT_COMPACTION, None):
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, compaction=value)
        assert load_agent(save_agent(agent, tmp_path / f"plain-{value}")).compaction == value
    (tmp_path / "plain-None" / "agent.json").write_text(
        (tmp_path / "masked" / "agent.json").read_text().replace('"MaskObservations"', '"Forget"')
    )
    with pytest.raises(ToolLoadError, match="compaction policy 'Forget' is unknown"):
        load_agent(tmp_path / "plain-None")
