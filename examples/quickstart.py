"""The shortest useful agent: a CodeAgent with one tool and any model.

python examples/quickstart.py openai:gpt-4o          # needs OPENAI_API_KEY and codeloop[openai]
python examples/quickstart.py ollama:qwen2.5-coder   # a local Ollama, no key
"""

from __future__ import annotations

import sys

from codeloop import CodeAgent, tool


@tool
def get_stock_price(ticker: str) -> float:
    """Retrieves the current stock price for a given ticker symbol.

    Args:
        ticker: The stock ticker symbol, e.g. 'AAPL'.
    """
    return {"AAPL": 175.42, "GOOGL": 141.80}.get(ticker.upper(), 100.0)


if __name__ == "__main__":
    spec = sys.argv[1] if len(sys.argv) > 1 else "openai:gpt-4o"
    with CodeAgent(tools=[get_stock_price], model=spec, max_steps=6) as agent:
        print(agent.run("What are 100 AAPL shares and 50 GOOGL shares worth together?"))
