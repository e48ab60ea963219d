"""Batch runs: one agent run per task, many at once, recorded to JSONL and resumable by running again.

    from codeloop import CodeAgent
    from codeloop.batch import run_batch

    records = run_batch(
        lambda: CodeAgent(model=my_model, executor="local"),
        [{"id": "q1", "task": "What is 2**10?"}, {"id": "q2", "task": "What is 3**7?"}],
        concurrency=8,
        output="results.jsonl",
    )

`codeloop batch tasks.jsonl` is the same from the command line. Each record is a dict (see
`codeloop.jobs.record_of` for its fields) keyed by the task's "id".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jobs import Job, RemoteRunner, ResultSink, arun_jobs, run_jobs

__all__ = ["BatchTask", "TasksFileError", "read_tasks_file", "parse_tasks", "run_batch", "arun_batch"]

_KEYS = {"id", "task", "metadata"}


class TasksFileError(ValueError):
    """A tasks file (or list) is malformed; the message names the line and what to fix."""


@dataclass(frozen=True)
class BatchTask:
    """One task of a batch: its `id` (unique in the batch), the `task` text, and optional `metadata`.

    `metadata` (any JSON value) is copied into the task's record, e.g. an expected answer to score later.
    """

    id: str
    task: str
    metadata: Any = field(default=None)


def _task_from(item: Any, where: str) -> BatchTask:
    if isinstance(item, BatchTask):
        return item
    if not isinstance(item, dict):
        raise TasksFileError(
            f'{where}: expected an object like {{"id": "q1", "task": "..."}}, got {item!r:.80}'
        )
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise TasksFileError(f"{where}: unknown key(s) {', '.join(unknown)}; a task has: id, task, metadata")
    if "id" not in item or "task" not in item:
        missing = " and ".join(repr(k) for k in ("id", "task") if k not in item)
        raise TasksFileError(f"{where}: missing {missing}")
    task_id = item["id"]
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or str(task_id) == "":
        raise TasksFileError(f"{where}: 'id' must be a non-empty string or an integer, got {task_id!r}")
    if not isinstance(item["task"], str) or not item["task"].strip():
        raise TasksFileError(f"{where}: 'task' must be non-empty text, got {item['task']!r:.80}")
    return BatchTask(str(task_id), item["task"], item.get("metadata"))


def parse_tasks(items: Iterable[Any], source: str = "task") -> list[BatchTask]:
    """Check and convert tasks given as dicts (or `BatchTask`s); ids must be unique.

    Raises:
        TasksFileError: naming the item (`source` number) that is malformed or repeats an id.
    """
    tasks: list[BatchTask] = []
    first_seen: dict[str, int] = {}
    for number, item in enumerate(items, 1):
        task = _task_from(item, f"{source} {number}")
        if task.id in first_seen:
            raise TasksFileError(
                f"{source} {number}: id {task.id!r} was already used by {source} {first_seen[task.id]}; "
                "ids must be unique (results are recorded by id)"
            )
        first_seen[task.id] = number
        tasks.append(task)
    return tasks


def read_tasks_file(path: str | Path) -> list[BatchTask]:
    """The tasks of a JSONL file: one {"id": ..., "task": ...} object per line (blank lines are skipped).

    Everything is checked before anything runs. Raises `TasksFileError` naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TasksFileError(f"cannot read the tasks file '{path}': {reason}") from None
    items: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except ValueError as exc:
            raise TasksFileError(f"{path} line {number}: not valid JSON ({exc})") from None
    tasks: list[BatchTask] = []
    first_seen: dict[str, int] = {}
    for number, item in items:
        task = _task_from(item, f"{path} line {number}")
        if task.id in first_seen:
            raise TasksFileError(
                f"{path} line {number}: id {task.id!r} was already used on line {first_seen[task.id]}; "
                "ids must be unique (results are recorded by id)"
            )
        first_seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise TasksFileError(f'{path} holds no tasks; write one {{"id": ..., "task": ...}} object per line')
    return tasks


def run_batch(
    agent_factory: Callable[[], Any],
    tasks: Iterable[BatchTask | dict[str, Any]],
    *,
    concurrency: int = 8,
    output: str | Path | None = None,
    config: dict[str, Any] | None = None,
    sinks: Iterable[ResultSink] = (),
    progress: bool = False,
    retry_errors: bool = False,
    ray: str | bool | None = None,
) -> list[dict[str, Any]]:
    """Run every task on a fresh agent from `agent_factory()`, at most `concurrency` at once.

    With `output`, each finished run is appended to that JSONL file as it ends, and a task already recorded
    there is not run again: after Ctrl-C or a crash, the same call finishes the batch. `config` (e.g. the model
    name) is stored with every record, and resuming a file made with another config is refused. `sinks` receive
    every record too (e.g. a run store). `retry_errors` runs again the tasks recorded as failed by an error (see
    `codeloop.jobs.arun_jobs`). Returns one record per task, in the order given; a record's "success" is whether
    the run ended with a final answer. Inside a running event loop (Jupyter), `await arun_batch(...)` instead.

    With `ray` (a Ray cluster's address, or True for Ray's default), the runs go to a Ray cluster, `concurrency`
    at once on each node, and their records come back here to be written: `agent_factory` is pickled to the
    nodes, so it must build what it needs there (give sandboxed agents `codeloop.jobs_ray.NodeSandboxPool` as
    their executor for a sandbox pool per node).

    Raises:
        TasksFileError: a task is malformed or repeats an id (before anything runs).
        RunsLostError: with `ray`, some runs got no result because their node kept dying (the rest is recorded).
    """
    jobs = _jobs(agent_factory, tasks)
    return run_jobs(
        jobs, concurrency=concurrency, output=output, config=config, sinks=sinks, progress=progress,
        description="batch", retry_errors=retry_errors, remote=_remote(ray),
    )  # fmt: skip


async def arun_batch(
    agent_factory: Callable[[], Any],
    tasks: Iterable[BatchTask | dict[str, Any]],
    *,
    concurrency: int = 8,
    output: str | Path | None = None,
    config: dict[str, Any] | None = None,
    sinks: Iterable[ResultSink] = (),
    progress: bool = False,
    retry_errors: bool = False,
    ray: str | bool | None = None,
) -> list[dict[str, Any]]:
    """Async `run_batch`, on the running event loop (for Jupyter and async applications)."""
    jobs = _jobs(agent_factory, tasks)
    return await arun_jobs(
        jobs, concurrency=concurrency, output=output, config=config, sinks=sinks, progress=progress,
        description="batch", retry_errors=retry_errors, remote=_remote(ray),
    )  # fmt: skip


def _jobs(agent_factory: Callable[[], Any], tasks: Iterable[BatchTask | dict[str, Any]]) -> list[Job]:
    checked = parse_tasks(tasks)
    if not callable(agent_factory):
        raise TypeError(f"agent_factory must be a callable returning a new agent, got {agent_factory!r:.80}")
    return [Job(key=t.id, task=t.task, make_agent=agent_factory, fields=_fields(t)) for t in checked]


def _remote(ray: str | bool | None) -> RemoteRunner | None:
    if not ray:
        return None
    from .jobs_ray import ray_runner

    return ray_runner(ray)


def _fields(task: BatchTask) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": task.id}
    if task.metadata is not None:
        fields["metadata"] = task.metadata
    return fields
