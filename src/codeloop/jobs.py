"""Many agent runs at once, each recorded as one JSON line as it ends, resumable by running the same jobs again.

This is the engine under `codeloop batch` and `codeloop eval` (and their Python APIs, `codeloop.batch.run_batch`
and `codeloop.evals.run_eval`). A `Job` is one agent run with a key unique in its results file. `run_jobs` skips
the jobs whose key the file already holds, runs the others on one asyncio event loop (at most `concurrency` at
once, each on a fresh agent that is closed when its run ends) and appends each finished run to the file at once,
so Ctrl-C or a crash loses only the runs in flight: the same call again runs exactly those that are missing.

A run that ends (success, wrong answer, max steps, an error inside the run, an exception from the agent) is a
result and is recorded; a run stopped by Ctrl-C is not, so it runs again next time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "RETRIED_ERROR_KINDS",
    "Job",
    "ResultSink",
    "ResultsFile",
    "RemoteRunner",
    "ResultsFileError",
    "RunsLostError",
    "run_jobs",
    "record_of",
]

RETRIED_ERROR_KINDS = ("exception", "agent_error")
"""The error kinds `retry_errors=True` runs again: failures of the run itself, not answers."""

_OUTPUT_CHARS = 2000
"""An answer longer than this is cut in the record (the full run belongs in a trace or the run store)."""


class ResultsFileError(ValueError):
    """A results file cannot be resumed: it is corrupt, or holds runs made with other settings."""


RemoteRunner = Callable[
    [Sequence["Job"], dict[str, Any], int, Callable[[dict[str, Any]], None]], Awaitable[dict[str, str]]
]
"""Runs jobs somewhere else than this event loop (`codeloop.jobs_ray.ray_runner` sends them to a Ray cluster): it
gets the jobs not yet recorded, the config, the concurrency and a function to call with each finished run's
record; it returns the runs that got no result, by key, with why."""


class RunsLostError(RuntimeError):
    """Some runs got no result on a Ray cluster (their node died each time they were sent); the others are recorded.

    The lost runs are not in the results file, so running the same batch again runs them. `lost` maps each lost
    run's key to why; `records` holds the records of the runs that finished, in the order of the jobs.
    """

    def __init__(self, lost: dict[str, str], records: list[dict[str, Any]]) -> None:
        self.lost = dict(lost)
        self.records = records
        shown = "; ".join(f"{key}: {why}" for key, why in list(self.lost.items())[:5])
        more = f" (and {len(self.lost) - 5} more)" if len(self.lost) > 5 else ""
        super().__init__(
            f"{len(self.lost)} run(s) got no result on the Ray cluster: {shown}{more}; the finished runs are "
            "recorded, run the same batch again to retry the lost ones"
        )


class ResultSink(Protocol):
    """Somewhere finished runs go besides the JSONL file (the hook the run store plugs into)."""

    def record(self, record: dict[str, Any]) -> None:
        """Store one finished run (called on the event loop's thread, once per run, as it ends)."""


Scorer = Callable[[Any], dict[str, Any]]
"""Turns a run's final answer into record fields: at least "success" and "error_kind" (see `record_of`)."""


@dataclass
class Job:
    """One agent run.

    Args:
        key: Unique among the jobs of one results file; a record with this key means the run is done.
        task: The text given to the agent.
        make_agent: Builds a fresh agent for this run (called when the run starts, so at most `concurrency`
            agents exist at once); the agent is closed when the run ends.
        fields: Copied into the record first (e.g. the task id, agent kind and repeat number).
        score: Scores the final answer of a run that ended with one; without it, a successful run is a success.
    """

    key: str
    task: str
    make_agent: Callable[[], Any]
    fields: dict[str, Any] = field(default_factory=dict)
    score: Scorer | None = None


class ResultsFile:
    """A JSONL file of run records, appended to one line per finished run; the basis of resume-by-rerun.

    Opening it reads the records already there. A last line cut short by a crash is dropped (its run did not
    finish recording, so it runs again); any other line that is not a JSON record is an error naming the line.
    Every record carries the `config` it was made with; resuming with another config is refused, since the file
    would then mix runs of, say, two models. With `config=None` (only reading), any config is accepted.
    """

    def __init__(self, path: str | Path, config: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.config = None if config is None else dict(config)
        self.records: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        if self.path.is_dir():
            raise ResultsFileError(f"the results file {str(self.path)!r} is a directory; name a file")
        data = self.path.read_bytes()
        complete, _, tail = data.rpartition(b"\n")
        lines = complete.split(b"\n") if complete else []
        for number, line in enumerate(lines, 1):
            if line.strip():
                record = self._parse(line)
                if record is None:
                    raise ResultsFileError(
                        f"{self.path} line {number} is not a run record; the file is not one codeloop wrote, or "
                        "was edited: fix or remove that line, or write to another --output"
                    )
                self._check_config(record, number)
                self.records[record["key"]] = record
        if tail:
            # Every record is written with its newline in one write: a last line without one was cut short by a
            # crash, so its run is not done and runs again.
            with self.path.open("r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return record if isinstance(record, dict) and isinstance(record.get("key"), str) else None

    def _check_config(self, record: dict[str, Any], number: int) -> None:
        if self.config is None:
            return
        theirs = record.get("config") or {}
        differing = sorted(k for k in set(theirs) | set(self.config) if theirs.get(k) != self.config.get(k))
        if differing:
            detail = ", ".join(f"{k}: {theirs.get(k)!r} there, {self.config.get(k)!r} now" for k in differing)
            raise ResultsFileError(
                f"{self.path} holds runs made with other settings (line {number}: {detail}); to continue those "
                "runs use the same settings, otherwise write to another --output"
            )

    def drop(self, keys: Iterable[str]) -> None:
        """Remove the records of `keys` from the file (rewritten whole, then renamed over it: all or nothing)."""
        keys = set(keys) & set(self.records)
        if not keys:
            return
        for key in keys:
            del self.records[key]
        temporary = self.path.with_name(self.path.name + ".rewrite")
        with temporary.open("w", encoding="utf-8") as f:
            for record in self.records.values():
                f.write(json.dumps(record, default=repr, ensure_ascii=False) + "\n")
        os.replace(temporary, self.path)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line and flush it to the OS (a crash of this process then cannot lose it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=repr, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
        self.records[record["key"]] = record


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:_OUTPUT_CHARS]
    if isinstance(value, str) and len(value) > _OUTPUT_CHARS:
        return value[:_OUTPUT_CHARS] + "..."
    return value


def record_of(job: Job, result: Any, seconds: float, config: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of a finished run: `result` is the agent's `RunResult`, or the exception the run raised.

    Fields: key, the job's fields, state, success, error_kind (None, "wrong_answer", "checker_error",
    "max_steps", "budget", "agent_error" or "exception"), error, output, steps, input_tokens, output_tokens,
    cost_usd, seconds, run_id, config.
    """
    from .memory import ActionStep

    record: dict[str, Any] = {"key": job.key, **job.fields}
    if isinstance(result, BaseException):
        record.update(state="exception", success=False, error_kind="exception", output=None, steps=0)
        record.update(input_tokens=0, output_tokens=0, cost_usd=None, run_id=None)
        record["error"] = f"{type(result).__name__}: {result}"[:_OUTPUT_CHARS]
    else:
        record.update(
            state=result.state,
            output=_jsonable(result.output),
            steps=sum(isinstance(step, ActionStep) for step in result.steps),
            input_tokens=result.token_usage.input_tokens,
            output_tokens=result.token_usage.output_tokens,
            cost_usd=result.cost_usd,
            run_id=result.run_id or None,
            error=result.error,
        )
        kind = {"success": None, "max_steps": "max_steps", "budget": "budget"}.get(
            result.state, "agent_error"
        )
        record.update(success=kind is None, error_kind=kind)
        if job.score is not None and result.state in ("success", "max_steps"):
            # A run at max_steps still has a (forced) answer; the checker decides whether it is right.
            scored = _safe_score(job.score, result.output)
            if scored.get("error_kind") == "wrong_answer" and kind is not None:
                scored = {**scored, "error_kind": kind}
            record.update(scored)
    record["seconds"] = round(seconds, 4)
    record["config"] = config
    return record


def _safe_score(score: Scorer, output: Any) -> dict[str, Any]:
    try:
        return score(output)
    except Exception as exc:  # a faulty checker scores this run as an error; the other runs go on
        return {"success": False, "error_kind": "checker_error", "error": f"{type(exc).__name__}: {exc}"}


async def _close(agent: Any) -> None:
    close = getattr(agent, "close", None)
    if close is not None:
        await asyncio.to_thread(
            close
        )  # a sandbox worker's shutdown blocks; the loop keeps serving other runs


async def _run_one(job: Job, config: dict[str, Any]) -> dict[str, Any] | None:
    started = time.perf_counter()
    agent = None
    try:
        agent = job.make_agent()
        result: Any = await agent.arun(job.task, return_full_result=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the agent could not be built or raised: recorded, the batch goes on
        result = exc
    finally:
        if agent is not None:
            await asyncio.shield(_close(agent))
    if not isinstance(result, BaseException) and result.state == "interrupted":
        return None
    return record_of(job, result, time.perf_counter() - started, config)


class _Progress:
    """A rich progress bar on stderr (a no-op when disabled)."""

    def __init__(self, enabled: bool, description: str, total: int, done: int, ok: int) -> None:
        self.enabled = enabled
        self.ok = ok
        self.description = description
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[ok]} ok"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task(description, total=total, completed=done, ok=ok)

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._bar.start()
        return self

    def advance(self, record: dict[str, Any]) -> None:
        self.ok += bool(record.get("success"))
        if self.enabled:
            self._bar.update(self._task, advance=1, ok=self.ok)

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self._bar.stop()


def run_jobs(jobs: Sequence[Job], **options: Any) -> list[dict[str, Any]]:
    """Run the jobs not yet recorded in `output`, at most `concurrency` at once; return every job's record.

    Takes the options of `arun_jobs`, on an event loop of its own. Ctrl-C stops the runs in flight (they are not
    recorded) and raises `KeyboardInterrupt`; the records written so far stay in `output`.

    Raises:
        RuntimeError: called with an event loop running in this thread (as in Jupyter): await `arun_jobs`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun_jobs(jobs, **options))
    raise RuntimeError(
        "called inside a running event loop (Jupyter, an async app): use the async twin instead, "
        "e.g. `await arun_batch(...)` or `await arun_eval(...)`"
    )


async def arun_jobs(
    jobs: Sequence[Job],
    *,
    concurrency: int = 8,
    output: str | Path | None = None,
    config: dict[str, Any] | None = None,
    sinks: Iterable[ResultSink] = (),
    progress: bool = False,
    description: str = "runs",
    retry_errors: bool = False,
    remote: RemoteRunner | None = None,
) -> list[dict[str, Any]]:
    """Async `run_jobs`: run the jobs not yet recorded in `output` on the running loop; return every record.

    With `output`, each finished run is appended as it ends and jobs already recorded there are skipped; every
    record carries `config`, which must match the file's. With `retry_errors`, runs recorded with error kind
    "exception" or "agent_error" (the agent could not be built, or the run ended on an error such as an
    unreachable model) are removed from `output` and run again; wrong answers and runs that reached max_steps
    are results and stay. The records come back in the order of `jobs` (those found in `output` as they were).

    With `remote` (e.g. `codeloop.jobs_ray.ray_runner(address)`), the runs not yet recorded go there instead of
    this loop, and their records come back here to be written as they end.

    Raises:
        ValueError: two jobs share a key, or `concurrency` is below 1.
        ResultsFileError: `output` is corrupt or holds runs made with another `config`.
        RunsLostError: with `remote`, some runs got no result (e.g. their node kept dying); the rest is recorded.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"two jobs have the key {duplicate!r}; every job needs its own key")
    config = dict(config or {})
    results = ResultsFile(output, config) if output is not None else None
    if results is not None and retry_errors:
        results.drop([k for k, r in results.records.items() if r.get("error_kind") in RETRIED_ERROR_KINDS])
    done: dict[str, dict[str, Any]] = dict(results.records) if results is not None else {}
    pending = [job for job in jobs if job.key not in done]
    ok = sum(bool(done[k].get("success")) for k in keys if k in done)
    sinks = list(sinks)
    gate = asyncio.Semaphore(concurrency)

    with _Progress(progress, description, len(jobs), len(jobs) - len(pending), ok) as bar:

        def finished(record: dict[str, Any]) -> None:
            if results is not None:
                results.append(record)
            for sink in sinks:
                sink.record(record)
            done[record["key"]] = record
            bar.advance(record)

        async def guarded(job: Job) -> None:
            async with gate:
                record = await _run_one(job, config)
            if record is not None:
                finished(record)

        if remote is not None and pending:
            lost = await remote(pending, config, concurrency, finished)
            if lost:
                raise RunsLostError(lost, [done[key] for key in keys if key in done])
        else:
            await asyncio.gather(*(guarded(job) for job in pending))
    return [done[key] for key in keys]
