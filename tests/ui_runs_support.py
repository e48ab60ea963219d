"""A run store filled by real runs, for the run browser's tests: agents built on `OpenAIModel` talk to the
scripted LLM server over HTTP (the real OpenAI wire) and record into an SQLite store, as `codeloop run` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.store.sqlite import SQLiteStore
from codeloop.testing import ScriptedLLMServer, ScriptRequest


def code(snippet: str) -> str:
    """A scripted CodeAgent reply running `snippet`."""
    return f"Thought: go on.\n```python\n{snippet}\n```"


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@dataclass
class RecordedRuns:
    """The runs `record_runs` made, by role."""

    store: SQLiteStore
    path: Path
    manager: str
    """gpt-4o, session "alice": step 1 calls the managed agent "researcher", step 2 answers."""
    researcher: str
    """The managed agent's run, a child of `manager`."""
    retry: str
    """gpt-4o-mini, session "alice", the same task as `manager`: a failing step, then the same two steps."""
    tools: str
    """ToolCallingAgent on gpt-4o-mini, session "bob": one `add` tool call, then the answer."""
    stopped: str
    """gpt-4o, session "bob": out of steps (max_steps=1) — state "max_steps"."""


def _by_step(replies: list[Any]) -> Any:
    """A script answering by the conversation's progress (its assistant turns so far), not by call order: a
    request the client retried (a slow, loaded machine) gets the same reply again."""

    def reply(request: ScriptRequest) -> Any:
        # A session's earlier runs are in the conversation too: count from this run's task on.
        starts = [
            i for i, m in enumerate(request.messages) if m.role == "user" and "New task:" in str(m.content)
        ]
        done = sum(1 for m in request.messages[starts[-1] if starts else 0 :] if m.role == "assistant")
        return replies[min(done, len(replies) - 1)]

    return reply


def _run(
    model_id: str, replies: list[Any], build: Any, task: str, session: str, helper: list[Any] | None = None
) -> str:
    from codeloop.models import OpenAIModel

    with ScriptedLLMServer(_by_step(replies)) as server, ScriptedLLMServer(_by_step(helper or [""])) as other:
        model = OpenAIModel(model_id, api_base=server.base_url, api_key="test-key")
        helper_model = OpenAIModel(model_id, api_base=other.base_url, api_key="test-key")
        agent = build(model, helper_model)
        result = agent.run(task, session=session, return_full_result=True)
    return str(result.run_id)


def record_runs(path: Path) -> RecordedRuns:
    """Record the runs described by `RecordedRuns` into a new store at `path` (oldest first)."""
    common: dict[str, Any] = {"verbosity_level": 0, "store": path}
    task = "What is the capital of France? Ask the researcher."

    def manager(model: Any, researcher_model: Any) -> CodeAgent:
        researcher = CodeAgent(
            tools=[],
            model=researcher_model,
            executor="local",
            name="researcher",
            description="Finds facts.",
            **common,
        )
        return CodeAgent(tools=[], model=model, executor="local", managed_agents=[researcher], **common)

    manager_id = _run(
        "gpt-4o",
        [
            code("report = researcher(task='capital of France')\nprint(report)"),
            code("final_answer(report)"),
        ],
        manager,
        task,
        "alice",
        helper=[code("final_answer('Paris')")],  # the researcher's one step
    )

    def plain(model: Any, _: Any) -> CodeAgent:
        return CodeAgent(tools=[], model=model, executor="local", **common)

    retry_id = _run(
        "gpt-4o-mini",
        [code("1 / 0"), code("report = 'Paris'\nprint(report)"), code("final_answer(report)")],
        plain,
        task,
        "alice",
    )
    tools_id = _run(
        "gpt-4o-mini",
        [
            {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "5"}}]},
        ],
        lambda model, _: ToolCallingAgent(tools=[add], model=model, **common),
        "Add 2 and 3.",
        "bob",
    )
    stopped_id = _run(
        "gpt-4o",
        [code("print('thinking')"), "I could not finish."],
        lambda model, _: CodeAgent(tools=[], model=model, executor="local", max_steps=1, **common),
        "Think forever.",
        "bob",
    )
    store = SQLiteStore(path)
    children = store.children(manager_id)
    assert len(children) == 1, f"the manager's run has {len(children)} child runs; runs: {store.list_runs()}"
    researcher = children[0]
    return RecordedRuns(store, path, manager_id, researcher.run_id, retry_id, tools_id, stopped_id)
