"""Human approval for agents: a run paused on calls awaiting a decision, and `resume` continuing it.

`ApprovalMixin` is part of `MultiStepAgent` (agents.py); it holds the pause and resume side of approval, while
the decisions' checks, the gate and the hooks live in approval.py. There is one entry point, `resume`: a paused
ToolCallingAgent continues its suspended loop in this process (the decisions recorded through the durable
layer first, so a crash after that replays with them); everything else (a CodeAgent, whose snippet can only go
on at the call by re-running it, or a run paused or killed in another process) replays the run's journal with
the decisions applied by call id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from . import events as ev
from .approval import Deny, Paused, ToolGate, coerce_decisions, normalize_approvals
from .effects import AwaitApproval, Effect
from .memory import Timing

if TYPE_CHECKING:
    from .durable import Durability
    from .memory import AgentMemory, MemoryStep, RunResult, RunState

__all__ = ["ApprovalMixin"]

Loop: TypeAlias = Generator["ev.Event | Effect", Any, "RunResult"]
"""The agent loop generator (as `agents._Loop`)."""


class ApprovalMixin:
    """Pausing a run for approval and resuming it; mixed into `MultiStepAgent`, which provides the loop."""

    if TYPE_CHECKING:  # provided by MultiStepAgent
        memory: AgentMemory
        _durable: Durability
        _interrupt: Any
        _last_result: RunResult | None

        def _drive(self, loop: Loop, value: Any = None) -> Iterator[ev.Event]: ...
        def _adrive(self, loop: Loop, value: Any = None) -> AsyncIterator[ev.Event]: ...
        def _finish(self, return_full_result: bool) -> Any: ...
        def _emit(self, event: ev.Event) -> None: ...
        def _make_result(
            self, answer: Any, state: RunState, error: str | None, steps: list[MemoryStep], timing: Timing
        ) -> RunResult: ...

    def _init_approval(
        self,
        approval: Callable[..., Any] | None,
        before_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None,
        after_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None,
    ) -> None:
        # Hooks and the approval policy see every tool call (see codeloop.approval); checked here, before any run.
        self.tool_gate = ToolGate(approval, before_tool_call, after_tool_call)
        self._paused: Paused | None = None
        self._pending_approvals: dict[str, Any] = {}
        """Decisions for the run about to replay from its record (set by resume); `_start` takes them over."""
        self._run_approvals: dict[str, Any] = {}
        self._pending_rounds: list[dict[str, Any]] = []
        """The same decisions as given, one dict per resume (see `_approval_answer`)."""
        self._run_rounds: list[dict[str, Any]] = []
        self._run_timing = Timing()
        self._run_first = 0

    def _take_over_decisions(self) -> None:
        """At a run's start: close a paused run it replaces, and take over the decisions a replay was given.

        A replayed run (resume from the record) meets its decided calls again: a CodeAgent's code asks the gate,
        a ToolCallingAgent's AwaitApproval is answered from them. Taken over here, so no later run inherits them.
        """
        self._drop_paused()
        given, self._pending_approvals = self._pending_approvals, {}
        self.tool_gate.decided.clear()
        self.tool_gate.preset(coerce_decisions(given))
        self._run_approvals = given
        self._run_rounds, self._pending_rounds = self._pending_rounds, []

    def resume(
        self,
        run_id: str,
        *,
        approvals: dict[str, Any] | None = None,
        stream: bool = False,
        return_full_result: bool = False,
    ) -> Any:
        """Continue run `run_id`: paused for approval, stopped by an error, or killed with its process.

        `approvals` decides the calls a paused run waits for: `{call_id: True | False | "reason to deny"}`. True
        approves a call (it runs, once), False or a string denies it (the model is told "denied: reason"); calls
        left out stay pending, so the run pauses again. A paused ToolCallingAgent continues in this process where
        it stopped; otherwise the run is replayed from its journal: completed model and tool calls are answered
        from the record, not made again, and a CodeAgent's code is re-executed in a fresh executor (a snippet
        paused at a call goes on at that call). Returns like `run`; the run keeps its id. Raises `ValueError` for
        an unknown call id (listing the pending ones), `RunAlreadyFinished`, `RunLeased` (another process holds
        the run) or `RunDiverged` (the replay asked for other calls).
        """
        loop, decisions = self._resumption(run_id, approvals)
        if stream:
            return self._drive(loop, decisions)
        for _ in self._drive(loop, decisions):
            pass
        return self._finish(return_full_result)

    async def aresume(
        self, run_id: str, *, approvals: dict[str, Any] | None = None, return_full_result: bool = False
    ) -> Any:
        """Async twin of `resume`."""
        loop, decisions = self._resumption(run_id, approvals)
        async for _ in self._adrive(loop, decisions):
            pass
        return self._finish(return_full_result)

    _resumes_in_process = True
    """Whether a run paused here continues from its suspended loop (a CodeAgent's snippet needs the replay)."""

    def _resumption(self, run_id: str, approvals: dict[str, Any] | None) -> tuple[Loop, Any]:
        """The loop that continues `run_id`, and what to send it first (the decisions, in process)."""
        paused = self._paused
        if paused is not None and paused.result.run_id == run_id and self._resumes_in_process:
            decisions = self._decisions_for(run_id, approvals)
            self._durable.record_decisions(decisions)  # a crash after this replays with them
            return self._take_paused(), decisions
        from .resume import start_resume

        return start_resume(self, run_id, approvals), None

    def _decisions_for(self, run_id: str, approvals: dict[str, Any] | None) -> dict[str, Any]:
        """The JSON-able answer to the paused `AwaitApproval`: call_id -> True | "reason to deny"."""
        paused = self._paused
        if paused is None or paused.result.run_id != run_id:
            last = self._last_result
            if last is not None and last.run_id == run_id:
                raise ValueError(
                    f"run {run_id} is not awaiting approval (its state is {last.state!r}); only a run paused "
                    "with state 'awaiting_approval' takes approvals"
                )
            now = f" (this agent's paused run is {paused.result.run_id})" if paused is not None else ""
            raise ValueError(
                f"this agent has no run {run_id!r} awaiting approval{now}; a run paused in another process is "
                "continued from its record (codeloop.resume)"
            )
        decided = normalize_approvals(approvals or {}, paused.pending)
        if not decided:
            listing = "; ".join(str(p) for p in paused.pending)
            raise ValueError(f"give a decision for at least one pending call: {listing}")
        return {k: True if not isinstance(v, Deny) else v.reason for k, v in decided.items()}

    def _approval_answer(self, item: AwaitApproval) -> dict[str, Any] | None:
        """Decisions already given for `item`'s calls (a run replayed with `approvals=`), or None to pause.

        A replayed run may hold decisions for several pauses (every one it was ever given): each `AwaitApproval`
        takes those for its own calls; the ids were checked against the run's pending calls when it resumed.
        """
        ids = {p.call_id for p in item.pending}
        mine: dict[str, Any] = {}
        # Round by round, as they were given: calls approved in two resumes ran as two effects, so the replay
        # answers this pause with the first round that decides any of its calls (the rest pause it again).
        for given in self._run_rounds:
            mine = {k: v for k, v in given.items() if k in ids}
            if mine:
                for k in mine:
                    del given[k]
                break
        self._run_rounds = [r for r in self._run_rounds if r]
        if not mine:
            return None
        decided = coerce_decisions(mine, {p.call_id: p.tool for p in item.pending})
        return {k: True if not isinstance(v, Deny) else v.reason for k, v in decided.items()}

    def _take_paused(self) -> Loop:
        assert self._paused is not None
        loop, self._paused = self._paused.loop, None
        self._last_result = None
        self._interrupt.clear()
        return loop  # type: ignore[no-any-return]

    def _pause(self, loop: Loop, item: AwaitApproval, *, is_async: bool) -> ev.RunFinished:
        """Keep the suspended loop for `resume`; the paused result, announced as the run's `RunFinished`."""
        steps = list(self.memory.steps[self._run_first :])
        if item.step is not None:
            steps.append(item.step)
        self._run_timing.end()
        result = self._make_result(None, "awaiting_approval", None, steps, self._run_timing)
        result.pending = list(item.pending)
        self._paused = Paused(loop, result.pending, result, is_async)
        self._last_result = result
        event = ev.RunFinished(result)
        self._durable.observe(self, event)  # the journal keeps the pause and its pending calls
        self._emit(event)
        return event

    def _drop_paused(self) -> None:
        """A new run replaces a paused one: close its loop (the step in progress goes to memory, unresolved)."""
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.loop.close()
