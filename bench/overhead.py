"""Framework overhead per step, with a zero-latency scripted model (model time excluded).

    .venv/bin/python bench/overhead.py

Each run has N steps; every step's model call is timed and subtracted, so what remains is the loop itself:
building messages from memory, parsing, events, running a trivial code action or tool call, bookkeeping.
Executors are started before timing: a sandbox's one-time cold start is reported by bench/sandbox_latency.py.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.testing import ScriptedModel, ScriptRequest


class TimedModel(ScriptedModel):
    """A scripted model that records how long its own calls took, so they can be excluded."""

    def __init__(self, script: Any) -> None:
        super().__init__(script)
        self.model_seconds = 0.0

    def generate(self, messages: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return super().generate(messages, **kwargs)
        finally:
            self.model_seconds += time.perf_counter() - start


@tool
def increment(x: int) -> int:
    """Adds one.

    Args:
        x: The number.
    """
    return x + 1


def code_script(steps: int) -> Any:
    def reply(request: ScriptRequest) -> str:
        if request.index == 0:
            return "Thought: start.\n```python\ni = 0\n```"
        if request.index < steps - 1:
            return "Thought: count.\n```python\ni += 1\nprint(i)\n```"
        return "Thought: done.\n```python\nfinal_answer(i)\n```"

    return reply


def tool_script(steps: int) -> Any:
    def reply(request: ScriptRequest) -> dict[str, Any]:
        if request.index < steps - 1:
            return {"tool_calls": [{"name": "increment", "arguments": {"x": request.index}}]}
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": request.index}}]}

    return reply


def measure(make_agent: Any, steps: int, repeats: int) -> float:
    """Median milliseconds of loop overhead per step."""
    samples = []
    for _ in range(repeats):
        agent = make_agent(steps)
        executor = getattr(agent, "executor", None)
        if executor is not None:
            executor.run(
                "pass"
            )  # the worker's one-time start is sandbox_latency.py's cold start, not loop overhead
        start = time.perf_counter()
        agent.run("count", max_steps=steps + 1)
        total = time.perf_counter() - start
        samples.append((total - agent.model.model_seconds) / steps * 1000)
        close = getattr(agent, "close", None)
        if close:
            close()
    return statistics.median(samples)


def main() -> None:
    kinds: list[tuple[str, Any]] = [
        (
            "CodeAgent + LocalExecutor",
            lambda n: CodeAgent(model=TimedModel(code_script(n)), executor="local", verbosity_level=0),
        ),
        (
            "ToolCallingAgent",
            lambda n: ToolCallingAgent(
                tools=[increment], model=TimedModel(tool_script(n)), verbosity_level=0
            ),
        ),
    ]
    try:
        from codeloop.executors.transports.sandbox import SandboxExecutor  # noqa: F401

        kinds.insert(
            1,
            (
                "CodeAgent + SandboxExecutor",
                lambda n: CodeAgent(model=TimedModel(code_script(n)), executor="sandbox", verbosity_level=0),
            ),
        )
    except ImportError:
        pass
    print(
        f"python {sys.version.split()[0]}; framework overhead per step, model time excluded (median of 5 runs)"
    )
    print(f"{'agent':32} {'10 steps':>12} {'50 steps':>12}")
    for name, make in kinds:
        short, long = measure(make, 10, 5), measure(make, 50, 5)
        print(f"{name:32} {short:>9.3f} ms {long:>9.3f} ms")
    print("goal: <= 1 ms per step")


if __name__ == "__main__":
    main()
