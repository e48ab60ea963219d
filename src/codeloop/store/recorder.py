"""The recording listener: turns an agent's events into rows of a store, as the run goes.

The loop never persists anything; this listener does, from the events the loop emits anyway. Each action or
planning step is written with the events that led to it in one transaction, so the store holds every step the
run completed even if its process is killed. A store that fails is warned about by the agent (a listener never
breaks a run), except a full store: `StoreFullError` stops the run with state "error", keeping what was written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .. import events as ev
from ..memory import to_jsonable
from .base import EventRecord, RunRecord, Store
from .heartbeat import beat_while_running, stop_beating
from .liveness import process_identity

__all__ = ["StoreRecorder", "agent_config", "carried_run_context", "event_data", "run_context", "run_label"]

_active_run: ContextVar[str | None] = ContextVar("codeloop_active_run", default=None)
_active_label: ContextVar[str | None] = ContextVar("codeloop_active_label", default=None)
_carried_parent: ContextVar[str | None] = ContextVar("codeloop_carried_parent", default=None)
_running: set[str] = set()
_running_lock = threading.Lock()
# Streamed chunks: the whole text is recorded with the step, so the pieces are not.
_NOT_RECORDED = (ev.ModelTextDelta, ev.ExecutionLog)
# Events whose content the step holds: only their time is kept, in the `marks` of the StepFinished row (one
# row a step instead of five keeps recording under a millisecond a step).
_FOLDED = (ev.StepStarted, ev.ModelOutput, ev.CodeAction, ev.Observation)


@contextmanager
def run_label(label: str | None) -> Iterator[None]:
    """Label every run started inside the block (in this context: its threads and tasks started from it too),
    e.g. `with run_label("batch:nightly"): run_batch(...)`; `store.list_runs(label=...)` and `codeloop runs list
    --label` find them. A managed agent's run carries its manager's label."""
    token = _active_label.set(label)
    try:
        yield
    finally:
        _active_label.reset(token)


def run_context() -> dict[str, str | None]:
    """What a run started here now would inherit from this context, to carry to another process: its `label`
    (`run_label`) and its parent run (`parent_run_id`, the run of this process in progress here, if any).

    `codeloop.jobs_ray` sends it with each run to a Ray node, where `carried_run_context` applies it, so a run
    recorded on a node carries the label and parent link it would have had in this process."""
    parent = _active_run.get()
    with _running_lock:
        if parent not in _running:
            parent = None
    return {"label": _active_label.get(), "parent_run_id": parent or _carried_parent.get()}


@contextmanager
def carried_run_context(context: dict[str, str | None]) -> Iterator[None]:
    """Start the runs of the block as if in the context `run_context()` described in another process: with its
    label, and its parent run as the parent of runs that have none here (a run of this process in progress, such
    as a managed agent's manager, stays the parent of the runs it starts)."""
    label_token = _active_label.set(context.get("label"))
    parent_token = _carried_parent.set(context.get("parent_run_id"))
    try:
        yield
    finally:
        _carried_parent.reset(parent_token)
        _active_label.reset(label_token)


class StoreRecorder:
    """A listener recording `agent`'s runs into `store` (attached by the agent for `store=`)."""

    def __init__(self, store: Store, agent: Any) -> None:  # agent: a MultiStepAgent (not imported: no cycle)
        self.store = store
        self.agent = agent
        self.session: str | None = None
        """The session the next run belongs to (set by `agent.run(..., session=...)`)."""
        self.label: str | None = None
        """The label of the runs it records (e.g. "eval:<id>"), for `list_runs(label=...)`; managed agents'
        runs carry their manager's."""
        self._lock = threading.Lock()
        self._run: RunRecord | None = None
        self._parent_token: str | None = None
        self._parent_label: str | None = None
        self._first = 0
        self._written = 0
        self._seq = 0
        self._pending: list[EventRecord] = []
        self._marks: dict[str, float] = {}
        self._started = False

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, _NOT_RECORDED):
            return
        if isinstance(event, ev.RunStarted):
            self._start(event)
            return
        with self._lock:
            if self._run is None:
                return
            if isinstance(event, _FOLDED):
                self._marks[type(event).__name__] = time.time()
                return
            record = self._record(event)
            if isinstance(event, ev.StepFinished):
                record.data["marks"], self._marks = self._marks, {}
            self._pending.append(record)
        if isinstance(event, ev.RunFinished):
            self._finish(event)
        elif isinstance(event, ev.StepFinished | ev.PlanCreated):
            self._flush()

    def _record(self, event: ev.Event) -> EventRecord:
        assert self._run is not None
        record = EventRecord(
            self._run.run_id, self._seq, type(event).__name__, time.time(), event_data(event)
        )
        self._seq += 1
        return record

    def _start(self, event: ev.RunStarted) -> None:
        parent = _active_run.get()
        with _running_lock:
            if parent not in _running:  # a run left unfinished (abandoned stream) is no one's parent
                parent = None
            _running.add(event.run_id)
        recorded_parent = parent or _carried_parent.get()  # started on behalf of a run of another process
        agent = self.agent
        steps = agent.memory.steps
        self._first = max(len(steps) - 1, 0)  # the TaskStep the loop appended just before RunStarted
        self._written = 0
        self._seq = self._events_so_far(event.run_id)  # a resumed run goes on after its recorded events
        self._pending = []
        self._marks = {}
        self._run = RunRecord(
            run_id=event.run_id,
            agent=agent.name or type(agent).__name__,
            agent_class=type(agent).__name__,
            task=event.task,
            model_id=event.model_id,
            session=self.session,
            parent_run_id=recorded_parent,
            started_at=time.time(),
            config=agent_config(agent),
            owner=process_identity(),
            label=self.label if self.label is not None else _active_label.get(),
        )
        self._parent_token = parent
        self._parent_label = _active_label.get()
        _active_run.set(event.run_id)
        _active_label.set(self._run.label)
        with self._lock:
            self._pending.append(self._record(event))
        self._started = False
        self._ensure_started()

    def _events_so_far(self, run_id: str) -> int:
        try:
            return len(self.store.events(run_id))
        except Exception:  # a store that cannot be read now fails at its first write, where it is reported
            return 0

    def _ensure_started(self) -> None:
        # A run row that could not be written (a store busy past its timeout) is tried again with each write.
        if not self._started and self._run is not None:
            self.store.start_run(self._run)
            self._started = True
            beat_while_running(self._run.run_id, self.store)

    def _flush(self, final: bool = False) -> None:
        run = self._run
        if run is None:
            return
        self._ensure_started()
        steps = self.agent.memory.steps[self._first :]
        # The loop marks the last action step final after StepFinished: rewrite it at the end.
        start = max(self._written - 1, 0) if final else self._written
        new = [(i, steps[i].to_dict()) for i in range(start, len(steps))]
        with self._lock:
            events, self._pending = self._pending, []
        if not new and not events:
            return
        try:
            record = getattr(self.store, "record", None)
            if record is not None:
                record(run.run_id, new, events)
            else:
                for index, step in new:
                    self.store.add_step(run.run_id, index, step)
                self.store.add_events(run.run_id, events)
        except BaseException:
            with self._lock:  # not written: try again with the next flush
                self._pending[:0] = events
            raise
        self._written = len(steps)

    def _finish(self, event: ev.RunFinished) -> None:
        run = self._run
        assert run is not None
        result = event.result
        try:
            try:
                self._flush(final=True)
            finally:
                self._ensure_started()
                run.state = result.state
                run.ended_at = time.time()
                run.step_count = sum(1 for s in result.steps if type(s).__name__ == "ActionStep")
                run.input_tokens = result.token_usage.input_tokens
                run.output_tokens = result.token_usage.output_tokens
                run.cost_usd = result.cost_usd
                run.error = result.error
                run.output = to_jsonable(result.output)
                self.store.finish_run(run)
        finally:
            self._run = None
            stop_beating(run.run_id)
            with _running_lock:
                _running.discard(run.run_id)
            _active_run.set(self._parent_token)
            _active_label.set(self._parent_label)


def agent_config(agent: Any) -> dict[str, Any]:
    """The agent's configuration as recorded with each run: class, name, model (no keys), tools, settings."""
    from ..agent_io import _settings, describe_model

    try:
        settings, _ = _settings(agent)
    except Exception:  # a subclass with an unusual constructor: record what is certain
        settings = {}
    try:
        model = describe_model(agent.model)
    except Exception:  # a custom model class: its class and id still say which model ran
        model = {"class": type(agent.model).__qualname__, "model_id": getattr(agent.model, "model_id", "")}
    return {
        "class": f"{type(agent).__module__}:{type(agent).__qualname__}",
        "name": agent.name,
        "model": model,
        "tools": sorted(n for n in agent.tools if n not in agent.managed_agents),
        "managed_agents": sorted(agent.managed_agents),
        "settings": settings,
    }


def event_data(event: ev.Event) -> dict[str, Any]:
    """What the store keeps of an event: the run's timeline.

    What a step holds (the model's reply, the code, the observation, tool calls, the plan, the answer) is
    recorded once, with the step; its events keep the step number and what the steps do not hold. StepStarted,
    ModelOutput, CodeAction and Observation get no row: their times are the `marks` of the StepFinished row.
    """
    data: dict[str, Any] = {"agent": event.agent}
    if isinstance(event, ev.RunStarted):
        data.update(model_id=event.model_id, run_id=event.run_id)
    elif isinstance(event, ev.StepError):
        data.update(
            step_number=event.step_number, error_type=type(event.error).__name__, error=str(event.error)
        )
    elif isinstance(event, ev.ToolCallStarted):
        data.update(step_number=event.step_number, call_id=event.call.id, tool=event.call.name)
    elif isinstance(event, ev.StepFinished):
        data.update(step_number=event.step.step_number)
    elif isinstance(event, ev.RunFinished):
        data.update(state=event.result.state, error=event.result.error)
    elif isinstance(event, ev.ToolProgress | ev.ModelRetry):
        data.update(text=event.describe())
    elif not isinstance(
        event, (ev.PlanCreated, ev.FinalAnswer, *_FOLDED)
    ):  # a later event type: keep its fields
        data.update({k: v for k, v in vars(event).items() if k != "agent"})
    return data
