"""The console shows where a long run stands: step n of max, the run's tokens and cost so far, and retries."""

from __future__ import annotations

import io

from rich.console import Console

from codeloop import CodeAgent
from codeloop.console import ConsoleRenderer
from codeloop.models import OpenAIModel
from codeloop.testing import ScriptedLLMServer
from codeloop.testing.faults import Fault


def test_each_step_shows_its_number_of_the_maximum_the_runs_tokens_and_cost_and_its_retries() -> None:
    out = io.StringIO()
    renderer = ConsoleRenderer(level=1, console=Console(file=out, width=200, highlight=False))
    script = [
        {"content": "```python\nprint(1)\n```", "usage": {"input_tokens": 1000, "output_tokens": 100}},
        Fault.rate_limit(retry_after=0.01),
        {"content": "```python\nfinal_answer(2)\n```", "usage": {"input_tokens": 2000, "output_tokens": 200}},
    ]
    with ScriptedLLMServer(script) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="x")
        agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0, listeners=[renderer],
                          store=None, max_steps=5)  # fmt: skip
        assert agent.run("Two steps.") == 2
    text = out.getvalue()
    assert "Step 1 of 5" in text and "Step 2 of 5" in text
    footers = [line for line in text.splitlines() if line.startswith("Step ") and "/5 |" in line]
    assert len(footers) == 2
    assert "run: 1,100 tokens, $" in footers[0] and "retr" not in footers[0]
    assert "run: 3,300 tokens, $" in footers[1] and footers[1].endswith("| 1 model retry")
    assert "retrying in" in text and "HTTP 429" in text  # the retry itself, as it was announced
