"""The offline demo: the seed's leopard task, with recorded model replies and real code execution.

The model replies are a recording served by the scripted OpenAI-compatible server on 127.0.0.1 and read
through the real `openai` SDK. Everything else is real: the code runs in the executor, the `web_search` tool is
called from that code (over RPC when the executor is the sandbox) and searches a small offline corpus, and
the numbers come from that code.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DEMO_TASK", "DEMO_REPLIES", "web_search", "build_demo_agent"]

DEMO_TASK = "How many seconds would it take for a leopard at full speed to run through Pont des Arts?"

# An offline stand-in for a search engine: a few short documents the demo's tool can find by keyword.
_CORPUS = {
    "Leopard - Wikipedia": "The leopard (Panthera pardus) is a large cat. It can run at up to 58 km/h "
    "in short bursts and leap 6 m horizontally.",
    "Cheetah vs leopard speed": "Cheetahs reach 100 km/h; leopards are slower, with a top speed of about "
    "58 km/h, but are stronger climbers.",
    "Pont des Arts - Wikipedia": "The Pont des Arts is a pedestrian bridge in Paris over the Seine. "
    "It is 155 m long and 11 m wide, linking the Institut de France and the Louvre.",
    "Paris bridges": "Paris has 37 bridges over the Seine; the Pont Neuf is the oldest standing one.",
}


def web_search(query: str) -> str:
    """Searches a small offline corpus and returns the best-matching snippets.

    Args:
        query: What to search for, in a few keywords.
    """
    words = {w for w in re.findall(r"[a-z]+", query.lower()) if len(w) > 2}
    scored = []
    for title, text in _CORPUS.items():
        hay = f"{title} {text}".lower()
        score = sum(hay.count(w) for w in words)
        if score:
            scored.append((score, title, text))
    scored.sort(reverse=True)
    if not scored:
        return "No results."
    return "\n".join(f"## {title}\n{text}" for _, title, text in scored[:2])


DEMO_REPLIES: list[Any] = [
    """Thought: I need the leopard's top speed and the length of the Pont des Arts. I will search for both
and print what I find.
```python
speed_results = web_search("leopard top speed km/h")
print(speed_results)
bridge_results = web_search("Pont des Arts bridge length")
print(bridge_results)
```""",
    """Thought: The results say a leopard runs at up to 58 km/h and the bridge is 155 m long. I will pull both
numbers out of the search results I kept in variables, convert the speed to m/s and divide.
```python
import re
leopard_kmh = float(re.search(r"up to (\\d+) km/h", speed_results).group(1))
bridge_m = float(re.search(r"(\\d+) m long", bridge_results).group(1))
leopard_ms = leopard_kmh * 1000 / 3600
seconds = bridge_m / leopard_ms
print(f"speed: {leopard_ms:.2f} m/s, bridge: {bridge_m} m, time: {seconds:.2f} s")
```""",
    """Thought: I have the time. I will give it rounded to one decimal place.
```python
final_answer(round(seconds, 1))
```""",
]


def build_demo_agent(base_url: str, executor: Any = None, verbosity_level: int = 1) -> Any:
    """A CodeAgent wired to the scripted server at `base_url`, with the offline `web_search` tool."""
    from .code_agent import CodeAgent
    from .models.openai import OpenAIModel
    from .tools import tool

    model = OpenAIModel("gpt-4o", api_base=base_url, api_key="recorded-replies-need-no-key")
    kwargs: dict[str, Any] = {} if executor is None else {"executor": executor}
    return CodeAgent(
        tools=[tool(web_search)],
        model=model,
        max_steps=6,
        verbosity_level=verbosity_level,
        **kwargs,
    )


def run_demo(executor: Any = None, verbosity_level: int = 1) -> Any:
    """Run the demo and return the `RunResult`."""
    from .testing.server import ScriptedLLMServer

    with ScriptedLLMServer(DEMO_REPLIES) as server:
        agent = build_demo_agent(server.base_url, executor, verbosity_level)
        try:
            return agent.run(DEMO_TASK, return_full_result=True)
        finally:
            agent.close()
