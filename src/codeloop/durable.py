"""Durable runs: journal every effect before the loop sees its result, and resume a run from its journal.

The agent loop is a pure generator; the drivers in `agents.py` hand every effect it asks for to a `Recorder`.
For each effect the recorder appends a "started" entry, performs it, and appends "done" (with the result as
JSON) or "failed" before the loop sees the outcome. Tool calls made from inside a CodeAgent's code are
journaled the same way (kind "tool_in_code", `parent` = the seq of the code effect), through the wrappers
the agent sends to its executor in place of the tools, so it works in every executor: the tools always run
on the host.

Resuming replays the generator: an effect the journal holds as done is answered from the record (a model
is never asked again, a completed tool never runs again). A CodeAgent's code is re-executed in a fresh
executor to rebuild its variables, its tool calls answered from the journal, so the host never unpickles
anything from a sandbox. A call that was in flight at the crash is repeated only if its tool is declared
idempotent (`@tool(idempotent=True)`); otherwise it fails with `ToolOutcomeUnknown`, which tells the model it
may or may not have happened. A replay that asks for something else than the record holds stops with
`RunDiverged`, naming the step.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from . import events as ev
from . import telemetry
from .durable_encoding import (
    decode_value as _decode_value,
)
from .durable_encoding import (
    encode_error as _encode_error,
)
from .durable_encoding import (
    encode_value as _encode_value,
)
from .durable_encoding import (
    execution_payload as _execution_payload,
)
from .durable_encoding import (
    execution_result as _execution_result,
)
from .durable_encoding import (
    is_exact as _is_exact,
)
from .durable_encoding import (
    model_request as _model_request,
)
from .durable_encoding import (
    rebuild_error as _rebuild_error,
)
from .durable_encoding import (
    tool_request as _tool_request,
)
from .effects import CallModel, CallTools, Done, Effect, RunCode, aperform, perform
from .errors import CodeloopError, ExecutionError
from .journal import DONE, FAILED, STARTED, Journal, JournalEntry, Leases, MemoryJournal, request_key
from .models.base import ChatMessage, Model

__all__ = [
    "JournalFactory",
    "ResumeError",
    "RunDiverged",
    "RunLeased",
    "RunAlreadyFinished",
    "ToolOutcomeUnknown",
    "Recorder",
    "Durability",
]

JournalFactory: TypeAlias = Callable[[str], Journal]
"""Makes (or opens) the journal of the run with this id."""

LEASE_SECONDS = 60.0
"""How long a lease holds without renewal; it is renewed as the run appends to its journal."""
FINISHED_STATES = ("success", "max_steps")
"""States after which a run has its answer and cannot be resumed."""
_MEMORY_RUNS_KEPT = 16  # in-process journals an agent keeps (for in-process resume) without a store


class ResumeError(CodeloopError):
    """A run cannot be resumed (unknown, finished, held by another process, or its replay diverged)."""


class RunDiverged(ResumeError):
    """Replaying a run asked for other effects than its journal holds (e.g. code made other tool calls)."""


class RunLeased(ResumeError):
    """Another process holds the run's lease: it is running or resuming that run now."""


class RunAlreadyFinished(ResumeError):
    """The run already ended with an answer; there is nothing to resume."""


class ToolOutcomeUnknown(RuntimeError):
    """A tool call was in flight when the run stopped, and its tool is not idempotent: it may or may not
    have happened, so it is not repeated blindly."""


# --- the recorder: one per run ------------------------------------------------------------------------------------


class Recorder:
    """Journals one run's effects, and answers them from its journal while a resumed run replays."""

    def __init__(
        self,
        journal: Journal,
        tools: dict[str, Any],
        recorded: list[JournalEntry] | None = None,
        lease_owner: str | None = None,
    ) -> None:
        self.journal = journal
        self.tools = tools
        self._recorded = {entry.seq: entry for entry in recorded or []}
        self._last_recorded = max(self._recorded, default=-1)
        self._next_seq = 0
        self._lock = threading.Lock()
        self._code_seq: int | None = None
        self._run_entry: JournalEntry | None = None
        self._replaying_code = False
        self.diverged: RunDiverged | None = None
        """Set when the replay diverged: raised again after the code that met it, whatever that code caught."""
        self._step = 0
        self._lease_owner = lease_owner
        self._lease_renewed = time.monotonic()
        self.journal_error: BaseException | None = None

    # - sequence numbers, appends, lookups -

    def _take_seqs(self, count: int = 1) -> int:
        with self._lock:
            first = self._next_seq
            self._next_seq += count
            return first

    @property
    def replaying(self) -> bool:
        """True while the run is still inside what its journal recorded."""
        return self._next_seq <= self._last_recorded

    def _append(
        self, seq: int, kind: str, key: str, status: str, result: Any = None, parent: int | None = None
    ) -> None:
        try:
            self.journal.append(JournalEntry(seq, kind, key, status, result, parent))
        except BaseException as exc:
            self.journal_error = exc
            raise
        self._renew_lease()

    def _renew_lease(self) -> None:
        if self._lease_owner is None or time.monotonic() - self._lease_renewed < LEASE_SECONDS / 3:
            return
        if isinstance(self.journal, Leases):
            holder = self.journal.acquire_lease(self._lease_owner, LEASE_SECONDS)
            if holder is not None:  # the lease expired and another process took the run over: stop here
                self.journal_error = RunLeased(
                    f"run {self.journal.run_id} was taken over by {holder} after this process's lease expired "
                    f"(no journal write for {LEASE_SECONDS:.0f} s); this process stops so that only one continues it"
                )
        self._lease_renewed = time.monotonic()

    def _lookup(self, seq: int, kind: str, key: str, parent: int | None, what: str) -> JournalEntry | None:
        entry = self._recorded.get(seq)
        if entry is None:
            return None
        if entry.kind != kind or entry.key != key or entry.parent != parent:
            recorded = f"a {entry.kind} effect" if entry.kind != kind else "a different request"
            self.diverged = RunDiverged(
                f"run {self.journal.run_id}: the replay of step {self._step} diverged at journal entry {seq}: it "
                f"asked for {what}, but the journal holds {recorded} there. The code or the tools behave "
                "differently than in the recorded run (randomness, time, changed tools), so it cannot be resumed "
                "faithfully."
            )
            raise self.diverged
        return entry

    # - events and the run's own entries -

    def start_run(
        self,
        task: str,
        max_steps: int,
        images: list[Any],
        variables: dict[str, Any],
        meta: dict[str, Any] | None = None,
        session: str | None = None,
    ) -> None:
        """Record what the run was asked to do (entry 0), so that another process can resume it.

        `meta` is kept as given (JSON): e.g. the CLI's settings, so that `codeloop resume` rebuilds the agent.
        """
        seq = self._take_seqs()
        payload = {
            "task": task,
            "max_steps": max_steps,
            "images": images,
            "variables": _encode_value(variables),
            "meta": meta or {},
            "session": session,  # its conversation so far is the session's other runs
        }
        self._run_entry = self._lookup(seq, "run", request_key(task), None, "the run itself")
        if self._run_entry is None:
            self._run_entry = JournalEntry(seq, "run", request_key(task), DONE, payload)
            self._append(seq, "run", request_key(task), DONE, payload)

    def observe(self, event: ev.Event) -> None:
        """Follow the loop's events: the step number (for messages) and the end of the run."""
        if isinstance(event, ev.StepStarted):
            self._step = event.step_number
        elif isinstance(event, ev.RunFinished) and event.result.state == "awaiting_approval":
            self._record_pause(event.result)
            self.release()  # the process may exit now; whoever decides resumes the run
        elif isinstance(event, ev.RunFinished):
            state = event.result.state
            # A replay that stopped inside the record (it diverged) must not overwrite what the record holds.
            if not self.replaying and self.journal_error is None and self.diverged is None:
                seq = self._take_seqs()
                try:
                    self._append(
                        seq, "finish", request_key(state), DONE, {"state": state, "error": event.result.error}
                    )
                except Exception:
                    pass  # the run's result stands; the journal cannot say it finished, so it stays resumable
            self.release()

    def _record_pause(self, result: Any) -> None:
        """Keep the calls the run paused on in its first entry (no seq: a resume replays the same effects)."""
        pending = [p.to_dict() if hasattr(p, "to_dict") else dict(p) for p in getattr(result, "pending", [])]
        entry = self._run_entry
        if entry is None or self.journal_error is not None:
            return
        self._run_entry = JournalEntry(
            entry.seq, entry.kind, entry.key, DONE, {**entry.result, "pending": pending}
        )
        try:
            self.journal.append(self._run_entry)
        except Exception as exc:
            self.journal_error = exc

    def add_decisions(self, decisions: dict[str, Any]) -> dict[str, Any]:
        """Keep approval decisions in the run's first entry (merged with earlier ones); all of them."""
        entry = self._run_entry
        if entry is None:
            return dict(decisions)
        known = {**(entry.result.get("decisions") or {}), **decisions}
        if decisions:
            rounds = [*_decision_rounds(entry.result), decisions]
            self._run_entry = JournalEntry(
                entry.seq, entry.kind, entry.key, DONE, {**entry.result, "decisions": known, "rounds": rounds}
            )
            self._append(entry.seq, entry.kind, entry.key, DONE, self._run_entry.result)
        return known

    def release(self) -> None:
        """Give up the run's lease."""
        if self._lease_owner is not None and isinstance(self.journal, Leases):
            try:
                self.journal.release_lease(self._lease_owner)
            except Exception:
                pass  # it expires on its own
            self._lease_owner = None

    # - effects -

    def _describe(self, effect: Effect) -> tuple[str, str, str]:
        if isinstance(effect, CallModel):
            return "model", request_key(_model_request(effect)), "a model call"
        if isinstance(effect, RunCode):
            return "code", request_key(effect.code), "a code run"
        if not isinstance(effect, CallTools):  # AwaitApproval: the drivers answer it themselves, never here
            raise TypeError(f"{type(effect).__name__} is not journaled as an effect")
        names = [(call.name, _encode_value(args)) for call, _tool, args in effect.calls]
        return "tools", request_key(names), f"tool calls {[name for name, _ in names]}"

    def perform(
        self, effect: Effect, model: Model, run_code: Callable[[str], Any]
    ) -> Iterator[ev.Event | Done]:
        """`effects.perform`, journaled: answered from the journal when the effect is recorded as done."""
        seq, kind, key, entry = self._begin(effect)
        live = entry is None or entry.status == STARTED
        if isinstance(effect, CallTools):
            effect = self._journaled_calls(seq, effect)  # each call is answered from its own entry
        elif not live:
            assert entry is not None
            yield Done(self._answer(seq, effect, entry, run_code))
            return
        self._code_seq = seq if kind == "code" else None
        if live:
            self._append(seq, kind, key, STARTED)
        try:
            for out in perform(effect, model, run_code):
                if isinstance(out, Done) and live:
                    self._finish(seq, kind, key, out.value)
                yield out
        except Exception as exc:
            if self.diverged is not None:
                raise self.diverged from exc  # the record is left as it was
            if live:
                self._fail(seq, kind, key, exc)
            raise
        finally:
            self._code_seq = None

    async def aperform(
        self, effect: Effect, model: Model, run_code: Callable[[str], Any]
    ) -> AsyncIterator[ev.Event | Done]:
        """Async twin of `perform`."""
        import asyncio

        seq, kind, key, entry = self._begin(effect)
        live = entry is None or entry.status == STARTED
        if isinstance(effect, CallTools):
            effect = self._journaled_calls(seq, effect)  # each call is answered from its own entry
        elif not live:
            assert entry is not None
            yield Done(await asyncio.to_thread(self._answer, seq, effect, entry, run_code))
            return
        self._code_seq = seq if kind == "code" else None
        if live:
            self._append(seq, kind, key, STARTED)
        try:
            async for out in aperform(effect, model, run_code):
                if isinstance(out, Done) and live:
                    self._finish(seq, kind, key, out.value)
                yield out
        except Exception as exc:
            if self.diverged is not None:
                raise self.diverged from exc  # the record is left as it was
            if live:
                self._fail(seq, kind, key, exc)
            raise
        finally:
            self._code_seq = None

    def _begin(self, effect: Effect) -> tuple[int, str, str, JournalEntry | None]:
        if self.journal_error is not None:
            raise self.journal_error  # a journal that failed once (full disk) ends the run, keeping what it holds
        kind, key, what = self._describe(effect)
        seq = self._take_seqs()
        entry = self._lookup(seq, kind, key, None, what)
        if entry is not None and kind == "model" and entry.status == FAILED:
            entry = None  # a model call that failed ended the run; resuming is the retry
        return seq, kind, key, entry

    def _answer(self, seq: int, effect: Effect, entry: JournalEntry, run_code: Callable[[str], Any]) -> Any:
        """The recorded outcome of a done or failed effect (code is re-executed first, to rebuild its state)."""
        if isinstance(effect, CallModel):
            return ChatMessage.from_dict(entry.result)
        assert isinstance(effect, RunCode)
        self._code_seq, self._replaying_code = seq, True
        fresh: Any = None
        try:
            fresh = run_code(effect.code)
        except ExecutionError as exc:
            if self.diverged is not None:
                raise self.diverged from exc
            if entry.status == DONE:
                raise RunDiverged(
                    f"run {self.journal.run_id}: re-executing the code of step {self._step} failed, but it "
                    f"succeeded in the recorded run: {exc}"
                ) from exc
        finally:
            self._code_seq, self._replaying_code = None, False
        if self.diverged is not None:
            raise self.diverged
        if self.journal_error is not None:
            raise self.journal_error
        if entry.status == FAILED:
            raise ExecutionError(entry.result["message"], logs=entry.result.get("logs") or "")
        return _execution_result(entry.result, fresh)

    def _finish(self, seq: int, kind: str, key: str, value: Any) -> None:
        if self.diverged is not None:
            raise self.diverged  # met by a tool call inside the code, which may have caught it
        if self.journal_error is not None:
            raise self.journal_error  # a tool call inside the code could not be journaled
        if kind == "model":
            payload: Any = value.to_dict()
        elif kind == "code":
            payload = _execution_payload(value)
        else:
            payload = None  # each call has its own entry
        self._append(seq, kind, key, DONE, payload)

    def _fail(self, seq: int, kind: str, key: str, exc: Exception) -> None:
        if exc is self.journal_error:
            return
        try:
            self._append(seq, kind, key, FAILED, _encode_error(exc))
        except Exception:
            pass  # the original error is what ends the step; the journal's own failure is kept for the next effect

    # - tool calls -

    def _journaled_calls(self, seq: int, effect: CallTools) -> CallTools:
        first = self._take_seqs(len(effect.calls))
        calls = [
            (
                call,
                JournaledTool(self, call.name, tool, fixed=(first + i, "tool", seq), call_id=call.id),
                args,
            )
            for i, (call, tool, args) in enumerate(effect.calls)
        ]
        return CallTools(calls)

    def call_tool(
        self,
        name: str,
        tool: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fixed: tuple[int, str, int] | None,
        call_id: str | None = None,
    ) -> Any:
        """Call `tool`, journaled: the recorded result when it ran before, else for real (recorded)."""
        if fixed is not None:
            seq, kind, parent = fixed
        elif self._code_seq is not None:
            seq, kind, parent = self._take_seqs(), "tool_in_code", self._code_seq
        else:
            return tool(*args, **kwargs)  # not inside a journaled effect (e.g. the executor used directly)
        key = request_key(_tool_request(name, args, kwargs))
        entry = self._lookup(seq, kind, key, parent, f"a call of tool {name!r}")
        if entry is None and self._replaying_code:
            self.diverged = RunDiverged(
                f"run {self.journal.run_id}: re-executing the code of step {self._step} made a call of tool "
                f"{name!r} that the recorded run did not make (journal entry {seq}); it was not run"
            )
            raise self.diverged
        idempotent = bool(getattr(tool, "idempotent", False))
        if entry is not None and entry.status == DONE and (_is_exact(entry.result) or not idempotent):
            return _decode_value(entry.result)
        if entry is not None and entry.status == FAILED:
            raise _rebuild_error(entry.result)
        if entry is not None and entry.status == STARTED and _paused_managed_run(entry):
            return self._continue_managed_run(seq, kind, key, parent, name, tool, entry.result)
        if entry is not None and entry.status == STARTED and not idempotent:
            raise ToolOutcomeUnknown(
                f"the call of tool {name!r} was in flight when the run stopped, so it may or may not have happened; "
                f"it was not repeated because {name!r} is not declared idempotent. Check its effect before calling "
                "it again."
            )
        self._append(seq, kind, key, STARTED, parent=parent)
        # only a call that really runs gets a span; one answered from the journal did not happen now
        span_args = kwargs or list(args)
        return self._run_live(
            seq, kind, key, parent, lambda: tool(*args, **kwargs), (name, call_id, span_args)
        )

    def _run_live(
        self,
        seq: int,
        kind: str,
        key: str,
        parent: int,
        invoke: Callable[[], Any],
        span_of: tuple[str, str | None, Any],
    ) -> Any:
        """Call `invoke` (the tool), journaling its outcome in entry `seq`: done, failed, or a paused managed run."""
        from .approval import ManagedAgentPaused

        name, call_id, span_args = span_of
        try:
            with telemetry.tool_call(name, call_id or f"call_{seq}", span_args) as span:
                result = invoke()
                span.finished(result)
        except ManagedAgentPaused as paused:
            # The call stays in flight; the record says which run of the managed agent to continue, and on what.
            pending = [p.to_dict() for p in paused.pending]
            record = {"managed_run": paused.run_id, "agent": paused.agent_name, "pending": pending}
            self._append(seq, kind, key, STARTED, record, parent)
            raise
        except Exception as exc:
            self._append(seq, kind, key, FAILED, _encode_error(exc), parent)
            raise
        self._append(seq, kind, key, DONE, _encode_value(result), parent)
        return result

    def _continue_managed_run(
        self, seq: int, kind: str, key: str, parent: int, name: str, tool: Any, record: dict[str, Any]
    ) -> Any:
        """A call to a managed agent whose run paused for approval: continue that run with the decisions given
        for its calls (or, with none for them, pause the manager again on the same calls)."""
        from .approval import NESTED_DECISIONS, Allow, ManagedAgentPaused, PendingCall

        pending = [PendingCall(**p) for p in record.get("pending") or []]
        given = NESTED_DECISIONS.get() or {}
        decisions = {  # as JSON, the way resume journals them: True, or the reason to deny
            p.call_id: True if isinstance(given[p.call_id], Allow) else given[p.call_id].reason
            for p in pending
            if p.call_id in given
        }
        resume = getattr(tool, "resume_run", None)
        if not decisions or resume is None:
            raise ManagedAgentPaused(str(record.get("agent") or name), str(record["managed_run"]), pending)
        return self._run_live(
            seq, kind, key, parent, lambda: resume(record["managed_run"], decisions), (name, None, decisions)
        )

    async def acall_tool(
        self,
        name: str,
        tool: Any,
        kwargs: dict[str, Any],
        fixed: tuple[int, str, int],
        call_id: str | None = None,
    ) -> Any:
        """Async twin of `call_tool` for a ToolCallingAgent's calls (tools with `acall` are awaited)."""
        import asyncio

        seq, kind, parent = fixed
        key = request_key(_tool_request(name, (), kwargs))
        entry = self._lookup(seq, kind, key, parent, f"a call of tool {name!r}")
        if entry is not None or getattr(tool, "acall", None) is None:
            return await asyncio.to_thread(self.call_tool, name, tool, (), kwargs, fixed, call_id)
        self._append(seq, kind, key, STARTED, parent=parent)
        try:
            with telemetry.tool_call(name, call_id or f"call_{seq}", kwargs) as span:
                result = await tool.acall(**kwargs)
                span.finished(result)
        except Exception as exc:
            self._append(seq, kind, key, FAILED, _encode_error(exc), parent)
            raise
        self._append(seq, kind, key, DONE, _encode_value(result), parent)
        return result


class JournaledTool:
    """Stands in for a tool: calls go through the run's `Recorder`, so they are journaled and replayable."""

    def __init__(
        self,
        recorder: Recorder | Callable[[], Recorder | None],
        name: str,
        tool: Any,
        fixed: tuple[int, str, int] | None = None,
        call_id: str | None = None,
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.tool = tool
        self._fixed = fixed
        self._call_id = call_id
        description = getattr(tool, "description", None)
        self.description = description if isinstance(description, str) else getattr(tool, "__doc__", None)
        self.__doc__ = self.description
        self.idempotent = bool(getattr(tool, "idempotent", False))
        if getattr(tool, "acall", None) is not None:
            self.acall = self._acall

    def _current(self) -> Recorder | None:
        return self._recorder if isinstance(self._recorder, Recorder) else self._recorder()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder = self._current()
        if recorder is None:
            return self.tool(*args, **kwargs)
        return recorder.call_tool(self.name, self.tool, args, kwargs, self._fixed, self._call_id)

    async def _acall(self, **kwargs: Any) -> Any:
        recorder = self._current()
        if recorder is None or self._fixed is None:
            return await self.tool.acall(**kwargs)
        return await recorder.acall_tool(self.name, self.tool, kwargs, self._fixed, self._call_id)

    def __repr__(self) -> str:
        return f"JournaledTool({self.tool!r})"


# --- per agent: which journal, the current run's recorder, and resuming ---------------------------------------------


@dataclass
class _Resumption:
    run_id: str
    journal: Journal
    recorded: list[JournalEntry]
    owner: str


class Durability:
    """An agent's link to its journals: opens one per run and prepares a resume."""

    def __init__(self, journal: JournalFactory | None) -> None:
        if journal is not None and not callable(journal):
            raise TypeError(
                f"journal= must be a callable taking a run id and returning a Journal (e.g. "
                f"FileJournal.factory(folder)), got {type(journal).__name__}"
            )
        self._factory = journal
        self._memory: dict[str, MemoryJournal] = {}
        self.recorder: Recorder | None = None
        self._pending: _Resumption | None = None
        self.metadata: dict[str, Any] = {}
        """JSON kept with each run's first journal entry (the CLI keeps its settings there)."""

    store_journal: Callable[[], JournalFactory | None] | None = None
    """Asked at each run when no `journal=` was given: the run store's journal factory, if the agent has a store.
    Asked late so that building an agent never opens (or warns about) the default store."""

    def open(self, run_id: str) -> Journal:
        """The journal of run `run_id` (the store's, else the agent's in-memory one when no factory was given)."""
        if self._factory is not None:
            return self._factory(run_id)
        from_store = self.store_journal() if self.store_journal is not None else None
        if from_store is not None:
            return from_store(run_id)
        journal = self._memory.get(run_id)
        if journal is None:
            journal = self._memory[run_id] = MemoryJournal(run_id)
            while len(self._memory) > _MEMORY_RUNS_KEPT:
                del self._memory[next(iter(self._memory))]
        return journal

    def next_run_id(self, new_id: Callable[[], str]) -> str:
        """The id for the run about to start: the resumed run's, or a new one."""
        return self._pending.run_id if self._pending is not None else new_id()

    def begin(self, run_id: str, tools: dict[str, Any]) -> Recorder:
        """Make the recorder of the run now starting (replaying the journal if it is a resume)."""
        pending, self._pending = self._pending, None
        if pending is not None and pending.run_id == run_id:
            self.recorder = Recorder(pending.journal, tools, pending.recorded, pending.owner)
        else:
            journal = self.open(run_id)
            owner = _lease_owner()
            if isinstance(journal, Leases):
                journal.acquire_lease(owner, LEASE_SECONDS)
            self.recorder = Recorder(journal, tools, None, owner)
        return self.recorder

    def prepare_resume(self, run_id: str) -> dict[str, Any]:
        """Check that run `run_id` can be resumed, take its lease, and return what it was asked to do."""
        journal = self.open(run_id)
        entries = journal.entries()
        if not entries or entries[0].kind != "run":
            raise ResumeError(
                f"no journal for run {run_id!r} here: resume needs the store (or journal=) the run was recorded "
                "in, and the run id from RunResult.run_id or the RunStarted event"
            )
        if entries[-1].kind == "finish":
            state = entries[-1].result.get("state")
            if state in FINISHED_STATES:
                raise RunAlreadyFinished(
                    f"run {run_id} already finished (state {state!r}); there is nothing to resume. Start a new run."
                )
            entries = entries[:-1]  # an error or interruption ended it: the replay continues past that point
        owner = _lease_owner()
        if isinstance(journal, Leases):
            holder = journal.acquire_lease(owner, LEASE_SECONDS)
            if holder is not None and _holder_is_dead(holder):
                holder = journal.acquire_lease(owner, LEASE_SECONDS, replace=holder)
            if holder is not None:
                raise RunLeased(
                    f"run {run_id} is being run or resumed by another process ({holder}); its lease expires within "
                    f"{LEASE_SECONDS:.0f} s of that process stopping. Try again later."
                )
        self._pending = _Resumption(run_id, journal, entries, owner)
        run = dict(entries[0].result)
        run["variables"] = _decode_value(run.get("variables") or {})
        return run

    def record_decisions(self, decisions: dict[str, Any]) -> dict[str, Any]:
        """Add approval decisions to the resuming (or current) run's first entry; all its decisions so far.

        A decision is kept there (entry 0 is re-appended, superseding itself), not only where the run paused,
        so that every later resume of the run (after another crash) gives the same calls the same decisions.
        """
        pending = self._pending
        if (
            pending is None
        ):  # a run continued in this process (paused for approval): its own recorder keeps them
            return self.recorder.add_decisions(decisions) if self.recorder is not None else dict(decisions)
        first = pending.recorded[0]
        known = dict(first.result.get("decisions") or {})
        if decisions:
            known.update(decisions)
            rounds = [*_decision_rounds(first.result), decisions]
            updated = JournalEntry(
                first.seq, first.kind, first.key, DONE, {**first.result, "decisions": known, "rounds": rounds}
            )
            pending.journal.append(updated)
            pending.recorded[0] = updated
        return known

    def decision_rounds(self) -> list[dict[str, Any]]:
        """The resuming run's decisions as they were given, one dict per resume, oldest first."""
        pending = self._pending
        return _decision_rounds(pending.recorded[0].result) if pending is not None else []

    def cancel_resume(self) -> None:
        """Undo `prepare_resume` when the run could not be started after all (its lease is given back)."""
        pending, self._pending = self._pending, None
        if pending is not None and isinstance(pending.journal, Leases):
            pending.journal.release_lease(pending.owner)

    def observe(self, agent: Any, event: ev.Event) -> None:
        """Follow the run's events: RunStarted opens its journal (or its replay), the rest go to the recorder."""
        if isinstance(event, ev.RunStarted):
            task, images, max_steps = agent._run_request
            recorder = self.begin(event.run_id, agent.tools)
            session = getattr(agent, "_run_session", None)
            recorder.start_run(task, max_steps, images, dict(agent.state), self.metadata, session)
        elif self.recorder is not None:
            self.recorder.observe(event)

    def perform(
        self, effect: Effect, model: Model, run_code: Callable[[str], Any]
    ) -> Iterator[ev.Event | Done]:
        """Perform `effect` through the current run's recorder."""
        if self.recorder is None:
            return perform(effect, model, run_code)
        return self.recorder.perform(effect, model, run_code)

    def aperform(
        self, effect: Effect, model: Model, run_code: Callable[[str], Any]
    ) -> AsyncIterator[ev.Event | Done]:
        """Async twin of `perform`."""
        if self.recorder is None:
            return aperform(effect, model, run_code)
        return self.recorder.aperform(effect, model, run_code)

    def current(self) -> Recorder | None:
        """The recorder of the run in progress, if any."""
        return self.recorder

    def wrap_tools(self, tools: dict[str, Any]) -> dict[str, Any]:
        """The tools as sent to an executor: each call journaled through the current run's recorder."""
        return {
            name: tool if name == "final_answer" else JournaledTool(self.current, name, tool)
            for name, tool in tools.items()
        }


def _decision_rounds(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions kept in a run's first entry, one dict per resume that gave some (oldest first).

    A ToolCallingAgent decided in two resumes ran the calls approved in each as a separate effect: a replay must
    answer its pauses round by round, or it would ask for one effect where the record holds two. Runs journaled
    before rounds were kept have their decisions as one round.
    """
    rounds = run.get("rounds")
    if isinstance(rounds, list):
        return [dict(r) for r in rounds]
    decided = run.get("decisions") or {}
    return [dict(decided)] if decided else []


def _paused_managed_run(entry: JournalEntry) -> bool:
    """Whether `entry` is a call to a managed agent left in flight because that agent's run paused for approval."""
    return isinstance(entry.result, dict) and "managed_run" in entry.result


def pending_approvals(journal: Journal) -> list[dict[str, Any]]:
    """The calls the run of `journal` is paused on and no decision answered yet (dicts with "call_id")."""
    entries = journal.entries()
    if not entries or entries[0].kind != "run":
        return []
    decided = entries[0].result.get("decisions") or {}
    return [p for p in entries[0].result.get("pending") or [] if str(p.get("call_id")) not in decided]


def journal_factory(folder: str | None) -> JournalFactory | None:
    """A `journal=` factory writing JSON-lines files into `folder` (None: the agent's in-memory default)."""
    from .journal import FileJournal

    return None if folder is None else FileJournal.factory(folder)


def _lease_owner() -> str:
    from .store.liveness import process_identity

    return f"{process_identity()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    """True when the lease holder was a process on this machine that no longer runs (killed, crashed; its pid
    possibly reused by another process since)."""
    from .store.liveness import owner_is_gone

    return owner_is_gone(holder)
