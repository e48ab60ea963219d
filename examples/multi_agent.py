"""A manager agent over two managed agents, as in the seed article.

python examples/multi_agent.py anthropic:claude-sonnet-4-6
"""

from __future__ import annotations

import sys

from codeloop import CodeAgent, WebSearchTool, tool


@tool
def get_stock_price(ticker: str) -> float:
    """Retrieves the current stock price for a given ticker symbol.

    Args:
        ticker: The stock ticker symbol (e.g., 'AAPL', 'GOOGL')
    """
    return 175.42


@tool
def calculate_portfolio_value(ticker: str, shares: int, price: float) -> dict:
    """Calculates the total value of a stock position.

    Args:
        ticker: Stock ticker symbol
        shares: Number of shares held
        price: Current price per share
    """
    return {"ticker": ticker, "total_value": shares * price, "shares": shares}


def main(spec: str) -> None:
    stock_analyst = CodeAgent(
        tools=[get_stock_price, calculate_portfolio_value],
        model=spec,
        name="stock_analyst",
        description="Analyzes stock prices and calculates portfolio values",
    )
    web_researcher = CodeAgent(
        tools=[WebSearchTool()],
        model=spec,
        name="web_researcher",
        description="Searches the web for financial news and company information",
    )
    manager = CodeAgent(tools=[stock_analyst, web_researcher], model=spec)
    print(manager.run("What is my position of 100 AAPL shares worth, and what is the latest news on Apple?"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "openai:gpt-4o")
