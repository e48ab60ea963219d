"""Real runs on the local model: per-step latency, tokens and llama.cpp's prefix-cache reuse.

    make real-model   # once: fetch the model, build the runtime
    .venv/bin/python bench/real_model.py [--repeat N]

Starts the prepared Qwen2.5-Coder-1.5B (Q4_K_M) on llama-cpp-python's server (2 threads, its GGUF chat template)
and runs, at temperature 0, a CodeAgent in the default sandbox and a ToolCallingAgent on two tool tasks. For
every model call it prints the wall time from request to full response, the prompt and completion tokens the
server reported, and how many prompt tokens llama.cpp reused from the previous request's cache instead of
evaluating them (from the server's own log, "N prefix-match hit"). Other CPU work on the machine slows the model
2-3x; the numbers are for an otherwise idle 2-core machine unless said otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from codeloop import CodeAgent, ToolCallingAgent, tool  # noqa: E402
from codeloop.testing.local_server import LocalModelServer, ServerExchange  # noqa: E402


@tool
def get_stock_price(ticker: str) -> float:
    """Retrieves the current stock price for a given ticker symbol.

    Args:
        ticker: The stock ticker symbol (e.g., 'AAPL', 'GOOGL')
    """
    return {"AAPL": 175.42, "GOOGL": 138.21, "MSFT": 411.3}.get(ticker.upper(), 100.0)


@tool
def calculate_portfolio_value(ticker: str, shares: int, price: float) -> dict:
    """Calculates the total value of a stock position.

    Args:
        ticker: Stock ticker symbol
        shares: Number of shares held
        price: Current price per share
    """
    return {"ticker": ticker, "total_value": shares * price, "shares": shares}


TASKS = [
    ("stock", "What is my position of 100 AAPL shares worth? Use the tools."),
    (
        "two stocks",
        "I hold 100 AAPL and 50 MSFT shares. Look up both prices with the tools, then give the total value.",
    ),
]


def run_one(server: LocalModelServer, agent_kind: str, task: str) -> tuple[Any, list[ServerExchange], float]:
    exchanges: list[ServerExchange] = []
    model = server.model(record=exchanges, temperature=0, seed=0, max_tokens=512)
    tools = [get_stock_price, calculate_portfolio_value]
    agent: Any
    if agent_kind == "CodeAgent":
        agent = CodeAgent(tools, model=model, max_steps=5, verbosity_level=0)
    else:
        agent = ToolCallingAgent(tools, model=model, max_steps=5, verbosity_level=0)
    started = time.perf_counter()
    try:
        result = agent.run(task, return_full_result=True)
    finally:
        if hasattr(agent, "close"):
            agent.close()
    return result, exchanges, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per agent and task")
    args = parser.parse_args()
    started = time.perf_counter()
    with LocalModelServer() as server:
        print(f"server ready in {time.perf_counter() - started:.1f} s (model load included)\n")
        header = f"{'agent':<17} {'task':<11} {'call':>4} {'s':>6} {'prompt':>6} {'reused':>6} {'new':>5} {'out':>4} {'out tok/s':>9}"
        print(header)
        print("-" * len(header))
        warm: list[tuple[float, int, int]] = []
        for agent_kind in ("CodeAgent", "ToolCallingAgent"):
            for name, task in TASKS:
                for _ in range(args.repeat):
                    result, exchanges, wall = run_one(server, agent_kind, task)
                    for i, e in enumerate(exchanges, 1):
                        prompt, out = e.usage.get("prompt_tokens", 0), e.usage.get("completion_tokens", 0)
                        reused = e.reused_prompt_tokens
                        new = prompt - reused
                        if reused:
                            warm.append((e.seconds, new, out))
                        rate = out / e.seconds if e.seconds else 0.0
                        print(
                            f"{agent_kind:<17} {name:<11} {i:>4} {e.seconds:>6.1f} {prompt:>6} {reused:>6} {new:>5} "
                            f"{out:>4} {rate:>9.1f}"
                        )
                    print(
                        f"  -> {result.state}, answer {result.output!r:.60}, {len(exchanges)} calls, {wall:.1f} s, "
                        f"{result.token_usage.input_tokens} in / {result.token_usage.output_tokens} out tokens\n"
                    )
        if warm:
            print(
                f"calls with a prefix-cache hit: {len(warm)}; median {statistics.median(w[0] for w in warm):.1f} s, "
                f"median new prompt tokens {statistics.median(w[1] for w in warm):.0f}, "
                f"median output tokens {statistics.median(w[2] for w in warm):.0f}"
            )


if __name__ == "__main__":
    main()
