"""Choosing an executor (`create_executor`) and CodeAgents running on the sandbox: tools and managed agents called
from sandboxed code run on the host; printed output streams as events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop import CodeAgent, events, tool
from codeloop.executors import EXECUTOR_KINDS, ExecutionResult, create_executor
from codeloop.testing import ScriptedModel, ScriptRequest


def code(src: str) -> str:
    return f"Thought: next step.\n```python\n{src}\n```"


def test_create_executor_knows_every_kind_and_lists_them_when_one_is_unknown() -> None:
    assert set(EXECUTOR_KINDS) == {"sandbox", "local", "docker", "e2b", "modal"}
    with pytest.raises(ValueError) as caught:
        create_executor("firecracker")
    assert "unknown executor 'firecracker'" in str(caught.value)
    for kind in EXECUTOR_KINDS:
        assert kind in str(caught.value)


def test_create_executor_builds_sandbox_and_local_with_their_options() -> None:
    from codeloop.executors import LocalExecutor, SandboxExecutor

    sandbox = create_executor("sandbox", timeout=2, max_print_outputs_length=100)
    local = create_executor("Local", additional_authorized_imports=["json"])
    try:
        assert (
            isinstance(sandbox, SandboxExecutor)
            and sandbox.timeout == 2
            and sandbox.max_print_outputs_length == 100
        )
        assert isinstance(local, LocalExecutor)
    finally:
        sandbox.close()
        local.close()


def test_remote_kinds_are_built_without_touching_their_cloud() -> None:
    from tests.transport_fakes import FakeDockerClient, FakeE2BSandbox, FakeModalSandbox

    stand_ins = {"docker": {"client": FakeDockerClient()}, "e2b": {"sandbox_factory": FakeE2BSandbox},
                 "modal": {"sandbox_factory": FakeModalSandbox}}  # fmt: skip
    for kind, stand_in in stand_ins.items():
        executor = create_executor(kind, timeout=3, **stand_in)  # nothing starts until the first step
        assert executor.timeout == 3  # type: ignore[attr-defined]
        executor.close()


def test_an_executor_instance_passes_through_and_other_objects_are_refused() -> None:
    class Custom:
        def send_tools(self, tools: dict[str, Any]) -> None: ...
        def send_variables(self, variables: dict[str, Any]) -> None: ...
        def run(self, code: str) -> ExecutionResult:
            return ExecutionResult(None, "")

        def close(self) -> None: ...
        def __enter__(self) -> Custom:
            return self

        def __exit__(self, *exc: object) -> None: ...

    custom = Custom()
    assert create_executor(custom) is custom  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="executor_kwargs"):
        create_executor(custom, timeout=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Executor instance"):
        create_executor(42)  # type: ignore[arg-type]


def test_importing_the_executors_package_loads_no_executor() -> None:
    probe = "import sys, codeloop.executors as e; print(sorted(m for m in sys.modules if m.startswith('codeloop.executors.')))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    # kinds: the executor names and their checks, so that a typo fails before anything heavy is loaded
    assert done.stdout.strip() == "['codeloop.executors.base', 'codeloop.executors.kinds']"


@needs_bwrap
def test_code_agent_on_the_sandbox_keeps_variables_and_calls_host_tools() -> None:
    host_pids: list[int] = []

    @tool
    def population(city: str) -> int:
        """Population of a city.

        Args:
            city: The city name.
        """
        host_pids.append(os.getpid())
        return {"Paris": 2_100_000, "Tokyo": 14_000_000}[city]

    agent = CodeAgent(
        tools=[population],
        model=ScriptedModel([code("p = population('Tokyo')\nprint(p)"), code("final_answer(p // 1000)")]),
        executor="sandbox",
        verbosity_level=0,
    )
    with agent:
        assert agent.run("How many thousand people live in Tokyo?") == 14_000
        assert "14000000" in (agent.memory.action_steps[0].observations or "")
        assert host_pids == [os.getpid()]


@needs_bwrap
def test_managed_agents_work_from_sandboxed_code() -> None:
    researcher = CodeAgent(
        model=ScriptedModel([code("final_answer('the leopard runs 58 km/h')")]),
        executor="local",
        name="researcher",
        description="Finds facts.",
        verbosity_level=0,
    )
    manager = CodeAgent(
        model=ScriptedModel(
            [code("report = researcher(task='How fast is a leopard?')\nfinal_answer(report)")]
        ),
        managed_agents=[researcher],
        executor="sandbox",
        verbosity_level=0,
    )
    with manager:
        answer = manager.run("Ask the researcher.")
    assert "the leopard runs 58 km/h" in answer and "researcher" in answer


@needs_bwrap
def test_printed_output_of_sandboxed_code_streams_as_events() -> None:
    # The code prints its second line only after the test has received the first as an event (a host tool
    # waits for that), so 'one' and 'two' are two events whatever the machine's load. Events held back until
    # the step ended would leave the tool waiting in vain: the code then prints 'not streamed'.
    seen_one = threading.Event()

    @tool
    def test_saw_one() -> bool:
        """Whether the test has received the line 'one' as an event (waits up to a minute for it)."""
        return seen_one.wait(60)

    agent = CodeAgent(
        tools=[test_saw_one],
        model=ScriptedModel(
            [code("print('one')\nprint('two' if test_saw_one() else 'not streamed')\nfinal_answer(2)")]
        ),
        executor="sandbox",
        stream_outputs=True,
        verbosity_level=0,
    )
    logs: list[str] = []
    with agent:
        for event in agent.run("stream", stream=True):
            if isinstance(event, events.ExecutionLog):
                logs.append(event.text)
                if "one" in "".join(logs):
                    seen_one.set()
    assert "".join(logs) == "one\ntwo\n" and len(logs) >= 2


# Ten steps that build on each other; step 4 is a mistake (an IndexError) that a model makes every few steps.
_PLAN = [
    "prices = [12.5, 13.0, 12.8, 13.4]\nprint(len(prices))",
    "volumes = [100, 150, 120, 130]\nprint(sum(volumes))",
    "weighted = [p * v for p, v in zip(prices, volumes)]\nprint(len(weighted))",
    "print(prices[10])",
    "total_volume = sum(volumes)\nprint(total_volume)",
    "vwap = sum(weighted) / total_volume\nprint(round(vwap, 3))",
    "spread = max(prices) - min(prices)\nprint(round(spread, 2))",
    "summary = {'vwap': round(vwap, 3), 'spread': round(spread, 2)}\nprint(summary)",
    "summary['days'] = len(prices)\nprint(summary)",
    "final_answer(summary)",
]


def _next_planned_step(request: ScriptRequest) -> str:
    """Like a model: move on after each step, but redo a step whose variables turned out to be missing."""
    done = 0
    for index, message in enumerate(request.messages):
        if message.role != "assistant":
            continue
        following = request.messages[index + 1 : index + 3]
        if not any(m.role == "user" and "is not defined" in m.text for m in following):
            done += 1
    return code(_PLAN[min(done, len(_PLAN) - 1)])


@pytest.mark.parametrize(
    "isolation", [pytest.param("subprocess", id="subprocess"), pytest.param("bubblewrap", marks=needs_bwrap)]
)
def test_a_mistake_at_step_four_costs_one_step_not_the_run(isolation: str) -> None:
    from codeloop.models import OpenAIModel
    from codeloop.testing import ScriptedLLMServer

    with ScriptedLLMServer(_next_planned_step) as server:
        model = OpenAIModel("scripted", api_base=server.base_url, api_key="test")
        agent = CodeAgent(
            model=model,
            executor="sandbox",
            executor_kwargs={"isolation": isolation},
            max_steps=20,
            verbosity_level=0,
            compaction=None,  # the plan counts the assistant turns in the request; condensed old steps hide them
        )
        with agent:
            answer = agent.run("Compute the VWAP and the spread of these prices.")
        assert server.call_count == len(_PLAN)
    assert answer == {"vwap": 12.956, "spread": 0.9, "days": 4}
    steps = agent.memory.action_steps
    assert len(steps) == 10 and "IndexError" in (steps[3].error or "")
    assert all(step.error is None for index, step in enumerate(steps) if index != 3)
