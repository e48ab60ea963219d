"""`run_eval`: every task of a suite with every chosen agent (and repeat), scored by the tasks' checkers.

    from codeloop.evals import run_eval, tool_tasks
    records = run_eval(tool_tasks(), "openai:gpt-4o-mini", agents=("code", "tool-calling"), output="eval.jsonl")
    for row in summarize(records):
        print(row.agent, row.solved, "/", row.runs)

Each record (one JSON line in `output`) holds the task, its category, the agent, the repeat number, the expected
answer, and the run's success, steps, tokens, cost, wall time and error kind (see `codeloop.jobs.record_of`).
Running the same call again after Ctrl-C or a crash runs only what is missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jobs import Job, RemoteRunner, ResultSink, arun_jobs, run_jobs
from .tasks import ToolTask

__all__ = ["AGENT_KINDS", "AgentSummary", "arun_eval", "run_eval", "summarize", "write_plot"]

AGENT_KINDS = ("code", "tool-calling")
"""The agents `run_eval` compares: codeloop's CodeAgent and ToolCallingAgent."""


def _model_source(model: Any) -> Callable[[], Any]:
    if isinstance(model, str):
        from ..models import model as model_from_spec

        shared = model_from_spec(model)  # one client for every run: API models are safe to share
        return lambda: shared
    if hasattr(model, "generate"):
        return lambda: model
    if callable(model):
        return model  # a factory: a fresh model per run (e.g. a ScriptedModel with a script per run)
    raise TypeError(
        f"model must be a spec like 'openai:gpt-4o', a model, or a function returning one; got {model!r}"
    )


def _agent_factory(
    kind: str,
    task: ToolTask,
    model: Callable[[], Any],
    executor: Any,
    max_steps: int,
    options: dict[str, Any],
) -> Callable[[], Any]:
    def make() -> Any:
        from ..code_agent import CodeAgent
        from ..tool_calling_agent import ToolCallingAgent

        common: dict[str, Any] = {"max_steps": max_steps, "verbosity_level": 0, **options}
        if kind == "code":
            return CodeAgent(list(task.tools), model(), executor=executor, **common)
        return ToolCallingAgent(list(task.tools), model(), **common)

    return make


def _scorer(task: ToolTask) -> Callable[[Any], dict[str, Any]]:
    def score(answer: Any) -> dict[str, Any]:
        solved = bool(task.check.accepts(answer))
        return {"success": solved, "error_kind": None if solved else "wrong_answer"}

    return score


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run_eval(
    tasks: Sequence[ToolTask],
    model: Any,
    *,
    agents: Sequence[str] = AGENT_KINDS,
    repeat: int = 1,
    concurrency: int = 4,
    output: str | Path | None = None,
    executor: Any = "sandbox",
    max_steps: int = 8,
    config: dict[str, Any] | None = None,
    sinks: Iterable[ResultSink] = (),
    progress: bool = False,
    agent_options: dict[str, Any] | None = None,
    retry_errors: bool = False,
    ray: str | bool | None = None,
) -> list[dict[str, Any]]:
    """Run every task with every agent in `agents`, `repeat` times; return one record per run.

    `model` is a spec ("openai:gpt-4o"), a model instance shared by all runs, or a function returning a model
    per run. Runs are ordered task by task (every agent on task 1, then task 2, ...), so a run stopped early
    still compares the agents on the same tasks. With `output`, finished runs are appended as they end and runs
    already there are skipped (resume-by-rerun); `config` is stored with each record and must match on resume.
    `agent_options` are passed to every agent (e.g. `listeners`); `sinks` receive every record too;
    `retry_errors` runs again the runs recorded as failed by an error (see `codeloop.jobs.arun_jobs`). Inside
    a running event loop (Jupyter), `await arun_eval(...)` instead. With `ray` (a Ray cluster's address, or True
    for Ray's default), the runs go to that cluster, `concurrency` at once on each node, a sandbox pool per node
    for `executor="sandbox"`, and come back here to be recorded (see `codeloop.jobs_ray`).

    Raises:
        ValueError: an unknown agent kind, `repeat` below 1, or no tasks (before anything runs).
    """
    jobs = _eval_jobs(
        tasks, model, agents, repeat, _node_executor(executor, ray, concurrency), max_steps, agent_options
    )
    return run_jobs(
        jobs, concurrency=concurrency, output=output, config=config, sinks=sinks, progress=progress,
        description="eval", retry_errors=retry_errors, remote=_remote(ray),
    )  # fmt: skip


async def arun_eval(
    tasks: Sequence[ToolTask],
    model: Any,
    *,
    agents: Sequence[str] = AGENT_KINDS,
    repeat: int = 1,
    concurrency: int = 4,
    output: str | Path | None = None,
    executor: Any = "sandbox",
    max_steps: int = 8,
    config: dict[str, Any] | None = None,
    sinks: Iterable[ResultSink] = (),
    progress: bool = False,
    agent_options: dict[str, Any] | None = None,
    retry_errors: bool = False,
    ray: str | bool | None = None,
) -> list[dict[str, Any]]:
    """Async `run_eval`, on the running event loop (for Jupyter and async applications)."""
    jobs = _eval_jobs(
        tasks, model, agents, repeat, _node_executor(executor, ray, concurrency), max_steps, agent_options
    )
    return await arun_jobs(
        jobs, concurrency=concurrency, output=output, config=config, sinks=sinks, progress=progress,
        description="eval", retry_errors=retry_errors, remote=_remote(ray),
    )  # fmt: skip


def _remote(ray: str | bool | None) -> RemoteRunner | None:
    if not ray:
        return None
    from ..jobs_ray import ray_runner

    return ray_runner(ray)


def _node_executor(executor: Any, ray: str | bool | None, concurrency: int) -> Any:
    if ray and executor == "sandbox":
        from ..jobs_ray import NodeSandboxPool

        # One pool per node, built there: sandboxes cold-started per run would cost more than the runs.
        return NodeSandboxPool(size=concurrency)
    return executor


def _eval_jobs(
    tasks: Sequence[ToolTask],
    model: Any,
    agents: Sequence[str],
    repeat: int,
    executor: Any,
    max_steps: int,
    agent_options: dict[str, Any] | None,
) -> list[Job]:
    unknown = [kind for kind in agents if kind not in AGENT_KINDS]
    if unknown or not agents:
        raise ValueError(
            f"unknown agent(s) {', '.join(unknown) or '(none given)'}; choose from {AGENT_KINDS}"
        )
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if not tasks:
        raise ValueError("no tasks to evaluate")
    source = _model_source(model)
    jobs = [
        Job(
            key=f"{task.name}/{kind}/{number}",
            task=task.question,
            make_agent=_agent_factory(kind, task, source, executor, max_steps, dict(agent_options or {})),
            fields={
                "task": task.name,
                "category": task.category,
                "agent": kind,
                "repeat": number,
                "expected": _jsonable(task.expected),
            },
            score=_scorer(task),
        )
        for number in range(repeat)
        for task in tasks
        for kind in agents
    ]
    return jobs


@dataclass
class AgentSummary:
    """One agent's totals over its runs (a row of the summary table)."""

    agent: str
    runs: int = 0
    solved: int = 0
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def success_rate(self) -> float:
        """Solved runs over all runs (0.0 with no runs)."""
        return self.solved / self.runs if self.runs else 0.0

    @property
    def mean_tokens(self) -> float:
        """Mean input plus output tokens per run."""
        return (self.input_tokens + self.output_tokens) / self.runs if self.runs else 0.0


def summarize(records: Iterable[dict[str, Any]], by: str | None = "agent") -> list[AgentSummary]:
    """Totals per value of the record field `by` ("agent" for an eval), in order of first appearance.

    With `by=None`, one row named "all" (a batch).
    """
    rows: dict[str, AgentSummary] = {}
    for record in records:
        name = "all" if by is None else str(record.get(by, "all"))
        row = rows.setdefault(name, AgentSummary(name))
        row.runs += 1
        row.solved += bool(record.get("success"))
        row.steps += int(record.get("steps") or 0)
        row.input_tokens += int(record.get("input_tokens") or 0)
        row.output_tokens += int(record.get("output_tokens") or 0)
        row.seconds += float(record.get("seconds") or 0.0)
        if record.get("cost_usd") is not None:
            row.cost_usd = (row.cost_usd or 0.0) + float(record["cost_usd"])
        if record.get("error_kind"):
            row.errors[str(record["error_kind"])] += 1
    return list(rows.values())


def write_plot(rows: Sequence[AgentSummary], path: str | Path, title: str = "") -> str | None:
    """Write a PNG of success rate against mean tokens per run, one point per agent.

    Returns None when written, else why not (matplotlib is an optional extra: `pip install codeloop[plot]`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed; must precede pyplot's import
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'codeloop[plot]'), so no plot was written"
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for row in rows:
            axes.scatter([row.mean_tokens], [100 * row.success_rate], s=80, label=row.agent)
            axes.annotate(
                f"{row.agent}\n{row.solved}/{row.runs}",
                (row.mean_tokens, 100 * row.success_rate),
                textcoords="offset points",
                xytext=(8, -4),
                fontsize=8,
            )
        axes.set_xlabel("mean tokens per run (input + output)")
        axes.set_ylabel("success (%)")
        axes.set_ylim(-5, 105)
        axes.set_xlim(left=0)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
        if title:
            axes.set_title(title, fontsize=10)
        figure.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return None
