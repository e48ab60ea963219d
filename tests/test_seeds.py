"""The seed articles' examples, run with codeloop imports against scripted models (acceptance tests)."""

from __future__ import annotations

import re

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.testing import ScriptedModel


def code(src: str, thought: str = "Thought: next.") -> str:
    return f"{thought}\n```python\n{src}\n```"


@tool
def web_search(query: str) -> str:
    """Searches the web (here: a fixed offline answer set) and returns a text summary.

    Args:
        query: The search query.
    """
    if "tokyo" in query.lower():
        return "The population of Tokyo is approximately 13.96 million (2026), over 2,194 km2."
    return "No results."


@tool
def calculator(expression: str) -> float:
    """Evaluates an arithmetic expression made of numbers and + - * /.

    Args:
        expression: The expression, e.g. "13960000 / 2194".
    """
    if not re.fullmatch(r"[\d\s.+\-*/()]+", expression):
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    a, op, b = re.fullmatch(r"\s*([\d.]+)\s*([+\-*/])\s*([\d.]+)\s*", expression).groups()  # type: ignore[union-attr]
    x, y = float(a), float(b)
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]


def test_leopard_demo_through_the_openai_sdk_and_scripted_server() -> None:
    from codeloop.demo import run_demo

    result = run_demo(executor="local", verbosity_level=0)
    assert result.state == "success"
    assert result.output == round(155 / (58 * 1000 / 3600), 1) == 9.6
    actions = [s for s in result.steps if type(s).__name__ == "ActionStep"]
    assert "speed_results = web_search(" in actions[0].code_action
    # step 2 computes from the variables step 1 left behind
    assert "speed_results" in actions[1].code_action and "9.62 s" in actions[1].observations


def test_tokyo_density_code_agent_uses_step_one_variable_in_step_two() -> None:
    script = [
        code('population_result = web_search("Tokyo population 2026")\nprint(population_result)'),
        code(
            "import re\n"
            "population = float(re.search(r'([\\d.]+) million', population_result).group(1)) * 1_000_000\n"
            "area_km2 = 2194\n"
            "density = population / area_km2\n"
            'print(f"Population density: {density:.0f} people/km2")'
        ),
        code("final_answer(round(density))"),
    ]
    agent = CodeAgent(tools=[web_search], model=ScriptedModel(script), verbosity_level=0, executor="local")
    assert agent.run("What is the population density of Tokyo?") == round(13_960_000 / 2194)
    assert "6363 people/km2" in agent.memory.action_steps[1].observations


def test_tokyo_density_tool_calling_agent() -> None:
    script = [
        {"tool_calls": [{"name": "web_search", "arguments": {"query": "Tokyo population 2026"}}]},
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "13960000 / 2194"}}]},
        {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "about 6363 people per km2"}}]},
    ]
    agent = ToolCallingAgent(tools=[web_search, calculator], model=ScriptedModel(script), verbosity_level=0)
    assert agent.run("What is the population density of Tokyo?") == "about 6363 people per km2"
    results = [s.tool_results[0].output for s in agent.memory.action_steps[:2]]
    assert "13.96 million" in results[0]
    assert results[1].startswith("6362.8")


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


def test_stock_tools_and_manager_over_two_managed_agents() -> None:
    stock_analyst = CodeAgent(
        tools=[get_stock_price, calculate_portfolio_value],
        model=ScriptedModel(
            [
                code("price = get_stock_price('AAPL')\nprint(price)"),
                code(
                    "position = calculate_portfolio_value('AAPL', 100, price)\n"
                    "final_answer(f\"100 AAPL shares are worth ${position['total_value']:,.2f}\")"
                ),
            ]
        ),
        name="stock_analyst",
        description="Analyzes stock prices and calculates portfolio values",
        verbosity_level=0,
        executor="local",
    )
    web_researcher = CodeAgent(
        tools=[web_search],
        model=ScriptedModel([code("final_answer('AAPL beat earnings estimates last quarter.')")]),
        name="web_researcher",
        description="Searches the web for financial news and company information",
        verbosity_level=0,
        executor="local",
    )
    manager = CodeAgent(
        tools=[stock_analyst, web_researcher],
        model=ScriptedModel(
            [
                code(
                    'analysis = stock_analyst("What is the value of 100 AAPL shares?")\n'
                    'news = web_researcher("Find recent AAPL earnings news")\n'
                    'print(f"Analysis: {analysis}\\nContext: {news}")'
                ),
                code("final_answer(analysis + ' | ' + news)"),
            ]
        ),
        verbosity_level=0,
        executor="local",
    )
    answer = manager.run("Value my 100 AAPL shares and tell me the news.")
    assert "$17,542.00" in answer and "beat earnings" in answer
    # step 1's variable `price` was used by step 2 inside the analyst
    assert "price" in stock_analyst.memory.action_steps[1].code_action
    assert "175.42" in stock_analyst.memory.action_steps[0].observations
    system = manager.model.requests[0].messages[0].text  # type: ignore[attr-defined]
    assert "stock_analyst" in system and "web_researcher" in system


def test_leopard_demo_in_the_default_sandbox_calls_the_tool_on_the_host() -> None:
    from codeloop.demo import run_demo

    result = run_demo(verbosity_level=0)  # the CodeAgent default executor: the sandbox
    assert result.state == "success" and result.output == 9.6
    actions = [s for s in result.steps if type(s).__name__ == "ActionStep"]
    assert "Pont des Arts" in actions[0].observations  # the tool ran on the host, its text came back
