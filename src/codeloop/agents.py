"""The agent loop: `MultiStepAgent` and `CodeAgent` (`ToolCallingAgent` is in tool_calling_agent.py).

The loop is written once, as a generator (`_loop`) that never does I/O itself: it yields events for listeners and
*effects* (call the model, run code, call tools) for a driver to perform, and receives their results back.
Two small drivers perform effects, one sync and one async; `run`, `arun`, `run(stream=True)` and `astream` sit on
them. The loop is the four lines of every multi-step agent:

    memory = [task]
    while not done:
        action = model(memory)
        memory += [action, execute(action)]
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from . import events as ev
from ._checks import check_limit
from ._text import short_repr
from .agent_parts import build_tool_table, check_code_tool_name, check_executor
from .approval import (
    ApprovalRequired,
    AwaitingApproval,
    Deny,
    GatedTool,
    Paused,
    PendingCall,
    ToolCallInfo,
    ToolGate,
    coerce_decisions,
    normalize_approvals,
)
from .effects import AwaitApproval, CallModel, CallTools, Done, Effect, RunCode, aperform, perform
from .errors import (
    AgentError,
    AgentExecutionError,
    AgentGenerationError,
    AgentInterrupted,
    AgentParsingError,
    ExecutionError,
)
from .memory import (
    ActionStep,
    AgentMemory,
    FinalAnswerStep,
    MemoryStep,
    PlanningStep,
    RunResult,
    RunState,
    TaskStep,
    Timing,
    image_parts,
    new_run_id,
)
from .models.base import ChatMessage, Model, TokenUsage, ToolCall
from .parsing import extract_code
from .prompts import load_prompt, render
from .tool_log import ToolCallLog

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MultiStepAgent", "CodeAgent", "StepCallback", "FinalAnswerCheck", "NO_ANSWER"]

StepCallback: TypeAlias = Callable[..., None]
"""Called after every action or planning step as `callback(step)` or `callback(step, agent)`."""
FinalAnswerCheck: TypeAlias = Callable[..., bool]
"""Called as `check(answer, memory)` (or `check(answer, memory, agent)`); False or an exception rejects it."""

DEFAULT_AUTHORIZED_IMPORTS = (
    "collections", "datetime", "itertools", "math", "queue", "random", "re", "stat", "statistics", "time",
    "unicodedata",
)  # fmt: skip


_log = logging.getLogger("codeloop")
_Loop: TypeAlias = Generator[ev.Event | Effect, Any, RunResult]
NO_ANSWER = object()
"""What a step returns when it did not end the run (None is a valid final answer)."""


@dataclass
class _Budget:
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_duration_s: float | None = None


class MultiStepAgent:
    """The loop shared by every agent. Subclasses say how one action step is taken (`_step`)."""

    prompt_name = ""

    def __init__(
        self,
        tools: Sequence[Any] = (),
        model: Model | str | None = None,
        *,
        max_steps: int = 20,
        planning_interval: int | None = None,
        instructions: str | None = None,
        step_callbacks: Sequence[StepCallback] = (),
        final_answer_checks: Sequence[FinalAnswerCheck] = (),
        managed_agents: Sequence[MultiStepAgent] = (),
        name: str | None = None,
        description: str | None = None,
        verbosity_level: int = 1,
        stream_outputs: bool = False,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_duration_s: float | None = None,
        listeners: Sequence[Callable[[ev.Event], None]] = (),
        add_base_tools: bool = False,
        approval: Callable[..., Any] | None = None,
        before_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        after_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        if model is None:
            raise ValueError(
                "an agent needs a model: pass model=OpenAIModel(...) or a spec like 'openai:gpt-4o'"
            )
        if isinstance(model, str):
            from .models import model as model_from_spec

            model = model_from_spec(model)
        check_limit("max_steps", max_steps, integer=True, optional=False)
        check_limit("planning_interval", planning_interval, integer=True)
        check_limit("max_tokens", max_tokens, integer=True)
        check_limit("max_cost_usd", max_cost_usd)
        check_limit("max_duration_s", max_duration_s)
        if name is not None and not name.isidentifier():
            raise ValueError(
                f"agent name {name!r} must be a valid Python identifier (it is called like a function)"
            )
        self.model: Model = model
        self.max_steps = max_steps
        self.planning_interval = planning_interval
        self.instructions = instructions
        self.step_callbacks = list(step_callbacks)
        self.final_answer_checks = list(final_answer_checks)
        self.name = name
        self.description = description
        self.stream_outputs = stream_outputs
        self.budget = _Budget(max_tokens, max_cost_usd, max_duration_s)
        self.listeners: list[Callable[[ev.Event], None]] = list(listeners)
        self._console: Callable[[ev.Event], None] | None = None
        self._failed_listeners: set[int] = set()
        self.verbosity_level = verbosity_level  # attaches the console listener when above 0
        self._interrupt = threading.Event()
        self.state: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._run_id = ""
        self._last_step = 0
        self._last_result: RunResult | None = None
        # Hooks and the approval policy see every tool call (see codeloop.approval); checked here, before any run.
        self.tool_gate = ToolGate(approval, before_tool_call, after_tool_call)
        self._paused: Paused | None = None
        self._pending_approvals: dict[str, Any] = {}
        """Decisions for the run about to replay from its record (set by resume); `_start` takes them over."""
        self._run_approvals: dict[str, Any] = {}
        self._run_timing = Timing()
        self._run_first = 0

        self.managed_agents: dict[str, MultiStepAgent] = {}
        self.tools: dict[str, Any] = {}
        self._register_tools(tools, managed_agents, add_base_tools)
        self.memory = AgentMemory(self.system_prompt())
        self._run_steps_start = 0

    @property
    def verbosity_level(self) -> int:
        """0 prints nothing, 1 the usual panels, 2 also the model's full replies; changeable between runs."""
        return self._verbosity_level

    @verbosity_level.setter
    def verbosity_level(self, level: int) -> None:
        self._verbosity_level = level
        # The console is a listener like any other; the loop never imports it (rich loads on first output).
        if level > 0:
            from .console import ConsoleRenderer

            self._console = ConsoleRenderer(level=level)
        else:
            self._console = None

    def _register_tools(
        self, tools: Sequence[Any], managed_agents: Sequence[MultiStepAgent], add_base_tools: bool
    ) -> None:
        """Fill `self.tools` and `self.managed_agents`, refusing any name that would shadow another."""
        defaults: list[Any] = []
        if add_base_tools:
            from .tools import base_tools

            defaults = base_tools("code" if isinstance(self, CodeAgent) else "tool-calling")
        self.tools, self.managed_agents = build_tool_table(
            [t for t in tools if not isinstance(t, MultiStepAgent)],
            list(managed_agents) + [t for t in tools if isinstance(t, MultiStepAgent)],
            defaults,
        )
        for name, t in self.tools.items():
            self._check_tool_name(name, t)

    def _check_tool_name(self, name: str, tool: Any) -> None:
        """Hook for subclasses: raise `ToolDefinitionError` if `name` clashes with what the agent relies on."""

    # --- prompts --------------------------------------------------------------------------------------------

    def system_prompt(self) -> str:
        """The system prompt built from the template, the tools and `instructions`."""
        return render(load_prompt(self.prompt_name), **self._prompt_values())

    def _prompt_values(self) -> dict[str, str]:
        agents = ""
        if self.managed_agents:
            listing = "\n".join(f"- {a.name}: {a.description}" for a in self.managed_agents.values())
            agents = render(load_prompt("managed_agents"), agents=listing)
        extra = f"\nAdditional instructions:\n{self.instructions}\n" if self.instructions else ""
        return {"managed_agents": agents, "instructions": extra}

    # --- public entry points: all four sit on the one loop ----------------------------------------------------

    def run(
        self,
        task: str,
        *,
        stream: bool = False,
        reset: bool = True,
        images: Sequence[Any] | None = None,
        additional_args: dict[str, Any] | None = None,
        max_steps: int | None = None,
        return_full_result: bool = False,
    ) -> Any:
        """Run the agent on `task` and return the final answer (or a `RunResult`, or an event iterator).

        `reset=False` continues the previous conversation. `additional_args` become variables the code can use.
        An error that ends the run is raised with `.result` (a `RunResult` holding every step so far) unless
        `return_full_result=True`, which returns that result instead.
        """
        loop = self._start(task, reset, images, additional_args, max_steps)
        if stream:
            return self._drive(loop)
        for _ in self._drive(loop):
            pass
        return self._finish(return_full_result)

    async def arun(
        self,
        task: str,
        *,
        reset: bool = True,
        images: Sequence[Any] | None = None,
        additional_args: dict[str, Any] | None = None,
        max_steps: int | None = None,
        return_full_result: bool = False,
    ) -> Any:
        """Async twin of `run`: model calls are awaited, code and sync tools run in worker threads."""
        loop = self._start(task, reset, images, additional_args, max_steps)
        async for _ in self._adrive(loop):
            pass
        return self._finish(return_full_result)

    def astream(
        self,
        task: str,
        *,
        reset: bool = True,
        images: Sequence[Any] | None = None,
        additional_args: dict[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> AsyncIterator[ev.Event]:
        """The run's events as an async iterator; the last one is `RunFinished`."""
        return self._adrive(self._start(task, reset, images, additional_args, max_steps))

    def __call__(self, task: str, **kwargs: Any) -> Any:
        """Run as a managed agent would be run: returns the answer."""
        return self.run(task, **kwargs)

    def close(self) -> None:
        """Release what the agent created: its executor's worker (CodeAgent), then its managed agents'.

        Objects passed in stay the caller's to close: an `Executor` instance, tools and their MCP
        connections (`ToolCollection`/`MCPClient` as context managers, or `tool.mcp_client.disconnect()`).
        Safe to call twice; a later run starts afresh. `with agent:` calls it on exit.
        """
        self._close_owned()
        for agent in self.managed_agents.values():
            agent.close()

    def _close_owned(self) -> None:
        """Hook for subclasses: close the resources this agent created itself."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def interrupt(self) -> None:
        """Ask the run to stop before its next step; the steps so far are kept."""
        self._interrupt.set()

    # --- human approval: pausing and resuming (the decisions' checks live in approval.py) ---------------------

    def resume(
        self,
        run_id: str,
        *,
        approvals: dict[str, Any] | None = None,
        stream: bool = False,
        return_full_result: bool = False,
    ) -> Any:
        """Continue the run `run_id`, paused for approval, with the decisions `{call_id: True | False | "reason"}`.

        True approves a call (it runs, once), False or a string denies it (the model is told "denied: reason").
        Calls left out stay pending: the run pauses again at once. Returns what `run` returns; the run keeps its id.
        Raises `ValueError` for a run that is not this agent's paused run or an unknown call id (listing the
        pending ones).
        """
        decisions = self._decisions_for(run_id, approvals)
        loop = self._take_paused()
        if stream:
            return self._drive(loop, decisions)
        for _ in self._drive(loop, decisions):
            pass
        return self._finish(return_full_result)

    async def aresume(
        self, run_id: str, *, approvals: dict[str, Any] | None = None, return_full_result: bool = False
    ) -> Any:
        """Async twin of `resume`."""
        decisions = self._decisions_for(run_id, approvals)
        loop = self._take_paused()
        async for _ in self._adrive(loop, decisions):
            pass
        return self._finish(return_full_result)

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
        given = self._run_approvals
        mine = {p.call_id: given[p.call_id] for p in item.pending if p.call_id in given}
        if not mine:
            return None
        decided = coerce_decisions(mine, {p.call_id: p.tool for p in item.pending})
        return {k: True if not isinstance(v, Deny) else v.reason for k, v in decided.items()}

    def _take_paused(self) -> _Loop:
        assert self._paused is not None
        loop, self._paused = self._paused.loop, None
        self._last_result = None
        self._interrupt.clear()
        return loop  # type: ignore[no-any-return]

    def _pause(self, loop: _Loop, item: AwaitApproval, *, is_async: bool) -> ev.RunFinished:
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
        self._emit(event)
        return event

    def _drop_paused(self) -> None:
        """A new run replaces a paused one: close its loop (the step in progress goes to memory, unresolved)."""
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.loop.close()

    def replay(self, detailed: bool = False) -> None:
        """Print the steps of the last run again."""
        from .console import ConsoleRenderer

        ConsoleRenderer(level=2 if detailed else 1).replay(
            self.memory.steps, self.name or type(self).__name__
        )

    # --- sharing: the logic lives in agent_io.py ----------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write this agent (class, model spec without keys, tools, managed agents, prompts, settings)."""
        from .agent_io import save_agent

        return save_agent(self, folder)

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> Any:
        """Rebuild an agent saved with `save` in a folder on this machine.

        No trust flag is needed: the saved tools' code runs as the folder loads, as importing a module of
        yours would, so load only folders you wrote or have read. Agents from elsewhere come through
        `from_hub`, which needs `trust_remote_code=True`. `kwargs`: `model=` replaces the saved model; other
        keywords replace saved settings (`trust_remote_code` is accepted and has no effect here).
        """
        from .agent_io import load_agent

        return load_agent(folder, expected_class=cls, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the saved agent to a Hugging Face Hub repository."""
        from .agent_io import push_agent_to_hub

        return push_agent_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_hub(cls, repo_id: str, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        """Download and rebuild an agent from the Hub; needs `trust_remote_code=True` to run its tool code."""
        from .agent_io import load_agent_from_hub

        return load_agent_from_hub(repo_id, trust_remote_code=trust_remote_code, expected_class=cls, **kwargs)

    # --- the loop -----------------------------------------------------------------------------------------

    def _start(
        self,
        task: str,
        reset: bool,
        images: Sequence[Any] | None,
        additional_args: dict[str, Any] | None,
        max_steps: int | None,
    ) -> _Loop:
        if not isinstance(task, str) or not task.strip():
            raise ValueError("the task is empty: pass the agent a non-empty string describing what to do")
        check_limit("max_steps", max_steps, integer=True)
        if additional_args:
            self.state.update(additional_args)
            task += (
                "\nYou have been given these additional arguments; use them directly as variables by name:\n"
                + "\n".join(f"- {k}: {type(v).__name__}" for k, v in additional_args.items())
            )
        self._drop_paused()
        # A replayed run (resume from the record) meets its decided calls again: a CodeAgent's code asks the gate,
        # a ToolCallingAgent's AwaitApproval is answered from them. Taken over here, so no later run inherits them.
        given, self._pending_approvals = self._pending_approvals, {}
        self.tool_gate.decided.clear()
        self.tool_gate.preset(coerce_decisions(given))
        self._run_approvals = given
        if reset:
            self.memory = AgentMemory(self.system_prompt())
        self._interrupt.clear()
        self._last_result = None
        self._failed_listeners.clear()
        return self._loop(task, image_parts(images or ()), self.max_steps if max_steps is None else max_steps)

    def _loop(self, task: str, images: list[dict[str, Any]], max_steps: int) -> _Loop:
        timing = Timing()
        first = self._run_first = len(self.memory.steps)
        self._run_timing = timing
        self.memory.steps.append(TaskStep(task=task, images=images))  # memory = [task]
        self._prepare_run()
        run_id = self._run_id = new_run_id()
        yield ev.RunStarted(task, model_id=getattr(self.model, "model_id", ""), run_id=run_id)
        answer: Any = NO_ANSWER
        state: RunState = "success"
        error: str | None = None
        final_usage: TokenUsage | None = None
        try:
            self._last_step = max_steps
            for number in range(1, max_steps + 1):  # while not done:
                self._check_limits(timing, self.memory.steps[first:])
                if self.planning_interval and (number - 1) % self.planning_interval == 0:
                    yield from self._plan(task, number, max_steps)
                step = ActionStep(step_number=number)
                yield ev.StepStarted(number)
                try:
                    answer = yield from self._step(step)  # action = model(memory); result = execute(action)
                    if answer is not NO_ANSWER:
                        self._check_final_answer(answer)
                except AgentError as exc:
                    answer = NO_ANSWER
                    step.error, step.error_type = str(exc), type(exc).__name__
                    yield ev.StepError(exc, number)
                except AgentGenerationError as exc:  # ends the run; the step keeps what the model did send
                    _keep_partial_reply(step, exc)
                    raise
                finally:
                    step.timing.end()
                    self.memory.steps.append(step)  # memory += [action, observation]
                    self._callbacks(step)
                yield ev.StepFinished(step)
                if answer is not NO_ANSWER:
                    step.is_final_answer = True
                    break
            else:
                self._check_limits(timing, self.memory.steps[first:])
                state = "max_steps"
                error = f"reached max_steps={max_steps} without a final answer"
                answer, final_usage = yield from self._forced_final_answer(task)
        except _BudgetExceeded as exc:
            state, error, answer = "budget", str(exc), None
        except (AgentInterrupted, KeyboardInterrupt) as exc:
            state, error, answer = "interrupted", str(exc) or "interrupted by the user", None
        except Exception as exc:  # unfixable: kept as the result's error and raised by run()
            state, error, answer = "error", f"{type(exc).__name__}: {exc}", None
            self._error = exc
        if state in ("success", "max_steps"):
            self.memory.steps.append(FinalAnswerStep(output=answer, token_usage=final_usage))
            yield ev.FinalAnswer(answer)
        timing.end()
        result = self._make_result(answer, state, error, self.memory.steps[first:], timing)
        self._last_result = result
        yield ev.RunFinished(result)
        return result

    def _prepare_run(self) -> None:
        """Hook for subclasses: called once a run starts (e.g. to push tools and variables to an executor)."""
        self._error = None

    def _step(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, Any]:
        """Take one action step, filling `step`; return the final answer or `NO_ANSWER`."""
        raise AgentError(f"{type(self).__name__} does not define how to take a step")
        yield  # makes this a generator

    def _plan(self, task: str, number: int, max_steps: int) -> Generator[ev.Event | Effect, Any, None]:
        if number == 1:
            prompt = render(load_prompt("planning_initial"), task=task)
            messages = [ChatMessage("user", prompt)]
        else:
            prompt = render(load_prompt("planning_update"), task=task, remaining_steps=max_steps - number + 1)
            messages = [*self.memory.to_messages(), ChatMessage("user", prompt)]
        step = PlanningStep()
        message = yield CallModel(messages, stop=["<end_plan>"], stream=self.stream_outputs)
        step.plan = message.text.replace("<end_plan>", "").strip()
        step.model_output_message, step.token_usage = message, message.token_usage
        step.timing.end()
        self.memory.steps.append(step)
        self._callbacks(step)
        yield ev.PlanCreated(step)

    def _model_input(self, step: ActionStep) -> list[ChatMessage]:
        """The messages for `step`'s model call: the memory, and on the last of several steps a notice saying so.

        A small model that has printed the answer often keeps checking it until the steps run out; told that
        this step is the last, it calls final_answer with what it has.
        """
        messages = self.memory.to_messages()
        if step.step_number == self._last_step > 1:
            messages.append(ChatMessage("user", load_prompt("last_step").strip()))
        return messages

    def _forced_final_answer(self, task: str) -> Generator[ev.Event | Effect, Any, Any]:
        prompt = render(load_prompt("final_answer"), task=task)
        message = yield CallModel([*self.memory.to_messages(), ChatMessage("user", prompt)])
        return message.text, message.token_usage

    def _check_final_answer(self, answer: Any) -> None:
        for check in self.final_answer_checks:
            name = getattr(check, "__name__", repr(check))
            try:
                ok = _call_flexibly(check, answer, self.memory, self)
            except Exception as exc:
                raise AgentError(f"Final answer check {name} failed: {type(exc).__name__}: {exc}") from exc
            if not ok:
                raise AgentError(
                    f"Final answer check {name} rejected the answer {answer!r}. Fix it and try again."
                )

    def _callbacks(self, step: MemoryStep) -> None:
        for callback in self.step_callbacks:
            _call_flexibly(callback, step, self)

    # --- budgets and results ------------------------------------------------------------------------------

    def _cost(self, usage: TokenUsage) -> float | None:
        try:
            from .models.pricing import estimate_cost
        except ImportError:
            return None
        return estimate_cost(
            getattr(self.model, "model_id", ""), usage, provider=getattr(self.model, "provider", None)
        )

    def _check_limits(self, timing: Timing, steps: list[MemoryStep]) -> None:
        if self._interrupt.is_set():
            raise AgentInterrupted("interrupted by agent.interrupt()")
        b = self.budget
        used = _total_usage(steps)
        if b.max_tokens is not None and used.total_tokens >= b.max_tokens:
            raise _BudgetExceeded(f"max_tokens budget reached: {used.total_tokens} >= {b.max_tokens}")
        if b.max_cost_usd is not None:
            cost = self._cost(used)
            if cost is not None and cost >= b.max_cost_usd:
                raise _BudgetExceeded(f"max_cost_usd budget reached: ${cost:.4f} >= ${b.max_cost_usd}")
        if b.max_duration_s is not None:
            import time

            elapsed = time.time() - timing.start_time
            if elapsed >= b.max_duration_s:
                raise _BudgetExceeded(f"max_duration_s budget reached: {elapsed:.1f}s >= {b.max_duration_s}s")

    def _make_result(
        self, answer: Any, state: RunState, error: str | None, steps: list[MemoryStep], timing: Timing
    ) -> RunResult:
        usage = _total_usage(steps)
        return RunResult(
            answer, state, list(steps), usage, timing, error, self._cost(usage), run_id=self._run_id
        )

    def _finish(self, return_full_result: bool) -> Any:
        result = self._last_result
        assert result is not None, "the loop always ends with a result"
        if return_full_result:
            return result
        if result.state in ("success", "max_steps"):
            return result.output
        if result.state == "awaiting_approval":
            raise AwaitingApproval(result)
        exc = self._error
        if result.state == "interrupted":
            exc = AgentInterrupted(result.error or "interrupted")
        elif result.state == "budget" or exc is None:
            exc = AgentError(result.error or result.state)
        setattr(exc, "result", result)  # noqa: B010 - every raised run error carries its RunResult
        raise exc

    # --- drivers: perform the loop's effects, sync and async ---------------------------------------------------

    def _emit(self, event: ev.Event) -> None:
        """Hand `event` to the console (if attached) and every listener; a failing listener never ends the run.

        Listeners observe the run: a bug in one (or a terminal that cannot print a character) must not lose
        the run's work or be blamed on the model. The first failure of each listener in a run is warned about
        (`RuntimeWarning`); every failure is logged on the `codeloop` logger with its traceback.
        """
        event.agent = self.name or type(self).__name__
        for listener in [self._console, *self.listeners] if self._console else self.listeners:
            try:
                listener(event)
            except Exception as exc:
                name = getattr(listener, "__qualname__", None) or type(listener).__name__
                _log.debug("listener %s failed on %s", name, type(event).__name__, exc_info=True)
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    warnings.warn(
                        f"listener {name} raised {type(exc).__name__}: {exc} (on {type(event).__name__}); "
                        "the run goes on, and its further errors in this run are only logged",
                        RuntimeWarning,
                        stacklevel=2,
                    )

    def _drive(self, loop: _Loop, value: Any = None) -> Iterator[ev.Event]:
        # Models and tools working for this run (retries, MCP progress) report to it through the context.
        with ev.reporting_to(self._emit):
            yield from self._drive_events(loop, value)

    def _drive_events(self, loop: _Loop, value: Any = None) -> Iterator[ev.Event]:
        error: BaseException | None = None
        while (item := _advance(loop, value, error)) is not None:
            value = error = None
            if isinstance(item, ev.Event):
                self._emit(item)
                yield item
                continue
            if isinstance(item, AwaitApproval):
                value = self._approval_answer(item)
                if value is None:
                    yield self._pause(loop, item, is_async=False)
                    return
                continue
            try:
                for out in perform(item, self.model, self._run_code):
                    if isinstance(out, Done):
                        value = out.value
                    else:
                        self._emit(out)
                        yield out
            except (Exception, KeyboardInterrupt, ApprovalRequired) as exc:
                error = exc

    async def _adrive(self, loop: _Loop, value: Any = None) -> AsyncIterator[ev.Event]:
        with ev.reporting_to(self._emit):
            async for event in self._adrive_events(loop, value):
                yield event

    async def _adrive_events(self, loop: _Loop, value: Any = None) -> AsyncIterator[ev.Event]:
        error: BaseException | None = None
        while (item := _advance(loop, value, error)) is not None:
            value = error = None
            if isinstance(item, ev.Event):
                self._emit(item)
                yield item
                continue
            if isinstance(item, AwaitApproval):
                value = self._approval_answer(item)
                if value is None:
                    yield self._pause(loop, item, is_async=True)
                    return
                continue
            try:
                async for out in aperform(item, self.model, self._run_code):
                    if isinstance(out, Done):
                        value = out.value
                    else:
                        self._emit(out)
                        yield out
            except (Exception, KeyboardInterrupt, ApprovalRequired) as exc:
                error = exc

    def _run_code(self, code: str) -> Any:
        raise AgentError(f"{type(self).__name__} does not run code")


def _advance(loop: _Loop, value: Any, error: BaseException | None) -> ev.Event | Effect | None:
    """Hand the loop the last effect's result (or its error); its next event or effect, None once it ended."""
    try:
        return loop.throw(error) if error is not None else loop.send(value)
    except StopIteration:
        return None


def _keep_partial_reply(step: ActionStep, exc: AgentGenerationError) -> None:
    step.error, step.error_type = str(exc), type(exc).__name__
    if exc.partial_output and step.model_output is None:
        step.model_output = exc.partial_output
        step.model_output_message = ChatMessage("assistant", exc.partial_output)


def _total_usage(steps: list[MemoryStep]) -> TokenUsage:
    usage = TokenUsage()
    for step in steps:
        usage = usage + getattr(step, "token_usage", None)
    return usage


class _BudgetExceeded(Exception):
    """A budget (tokens, cost, duration) would be exceeded by the next model call."""


# --- CodeAgent ---------------------------------------------------------------------------------------------------


class CodeAgent(MultiStepAgent):
    """An agent whose actions are Python snippets run by an executor; tools are Python functions in its code."""

    prompt_name = "code_agent"

    def __init__(
        self,
        tools: Sequence[Any] = (),
        model: Model | str | None = None,
        *,
        executor: Any = "sandbox",
        executor_kwargs: dict[str, Any] | None = None,
        additional_authorized_imports: Sequence[str] = (),
        max_print_outputs_length: int | None = None,
        use_structured_outputs: bool = False,
        **kwargs: Any,
    ) -> None:
        check_limit("max_print_outputs_length", max_print_outputs_length, integer=True)
        check_executor(executor, executor_kwargs or {})
        self.use_structured_outputs = use_structured_outputs
        self.additional_authorized_imports = list(additional_authorized_imports)
        self.authorized_imports = sorted(set(DEFAULT_AUTHORIZED_IMPORTS) | set(additional_authorized_imports))
        self.executor_spec = executor.strip().lower() if isinstance(executor, str) else executor
        self.executor_kwargs = dict(executor_kwargs or {})
        self.max_print_outputs_length = max_print_outputs_length
        self._executor: Any = None
        self._tool_log = ToolCallLog()
        super().__init__(tools, model, **kwargs)
        if use_structured_outputs and not getattr(self.model, "supports_response_format", True):
            from .errors import ModelConfigurationError

            raise ModelConfigurationError(
                f"use_structured_outputs=True needs a model with JSON Schema output; {self.model!r} has none. "
                "Use another model or leave use_structured_outputs off."
            )

    def _check_tool_name(self, name: str, tool: Any) -> None:
        check_code_tool_name(name, tool, self.authorized_imports)

    def _prompt_values(self) -> dict[str, str]:
        values = super()._prompt_values()
        stubs = [t.to_code_prompt() for t in self.tools.values() if t.name != "final_answer"]
        stubs.append(_FINAL_ANSWER_STUB)
        values["tools"] = "\n\n".join(stubs)
        style = "json" if self.use_structured_outputs else "text"
        values["action_format"] = load_prompt(f"action_format_{style}")
        values["example"] = load_prompt(f"example_{style}")
        # Only the in-process executor enforces an import allow-list; sandboxes rely on their boundary.
        in_process = self.executor_spec == "local" or type(self.executor_spec).__name__ == "LocalExecutor"
        if not in_process:
            values["authorized_imports"] = "any installed module (the code runs in an isolated sandbox)"
        elif "*" in self.authorized_imports:
            values["authorized_imports"] = "any module"
        else:
            values["authorized_imports"] = ", ".join(self.authorized_imports)
        return values

    @property
    def executor(self) -> Any:
        """The executor, created on first use so that building an agent starts no process."""
        if self._executor is None:
            from .executors import create_executor

            kwargs = dict(self.executor_kwargs)
            if isinstance(self.executor_spec, str):
                kwargs.setdefault("additional_authorized_imports", self.additional_authorized_imports)
                if self.max_print_outputs_length is not None:
                    kwargs.setdefault("max_print_outputs_length", self.max_print_outputs_length)
            self._executor = create_executor(self.executor_spec, **kwargs)
        return self._executor

    def _prepare_run(self) -> None:
        super()._prepare_run()
        log = self._tool_log
        journaled = {
            name: t if name == "final_answer" else log.wrap(name, t) for name, t in self.tools.items()
        }
        self.executor.send_tools(self._tools_for_code(journaled))
        if self.state:
            self.executor.send_variables(dict(self.state))

    def _step(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, Any]:
        if self.use_structured_outputs:
            from .models.structured import code_action_response_format

            effect = CallModel(self._model_input(step), response_format=code_action_response_format())
        else:
            effect = CallModel(self._model_input(step), stop=["Observation:"])
        effect.stream = self.stream_outputs
        message = yield effect
        step.model_output_message, step.token_usage = message, message.token_usage
        step.model_output = message.text
        yield ev.ModelOutput(message, step.step_number)
        step.code_action = code = self._extract_code(message.text)
        yield ev.CodeAction(code, step.step_number)
        attach = self._attach_output if self.stream_outputs and hasattr(self.executor, "on_output") else None
        self._tool_log.clear()
        self.tool_gate.start_step(step.step_number)
        try:
            result = yield RunCode(code, attach)
        except ExecutionError as exc:
            step.observations = exc.logs or None
            calls = self._tool_log.render()  # the real keys and values, so a guessed one can be fixed
            raise AgentExecutionError(f"{exc}\n{calls}" if calls else str(exc)) from exc
        except ApprovalRequired as paused:
            return (yield from self._paused_in_code(step, paused))
        step.action_output = result.output
        observation = result.logs
        if not result.is_final_answer and result.output is not None:
            # Prefer the executor's own rendering: made inside the step, under its limits, by agent-defined reprs.
            rendered = getattr(result, "output_repr", None) or short_repr(result.output)
            observation += f"Last output from code snippet:\n{short_repr(rendered)}"
        if not observation and not result.is_final_answer:
            # Tools were called but nothing was looked at: show what they returned instead of nothing.
            observation = self._tool_log.render()
        step.observations = observation or "(the code printed nothing)"
        if self._repeats_previous_step(step):
            step.observations += "\n" + load_prompt("repeated_step").strip()
        yield ev.Observation(step.observations, step.step_number)
        return result.output if result.is_final_answer else NO_ANSWER

    def _forced_final_answer(self, task: str) -> Generator[ev.Event | Effect, Any, Any]:
        """Ask for code that calls final_answer with what the session holds, and run it.

        The answer is then the value the code computed (a number stays a number), not prose about it. A reply
        without usable code, or code that fails or does not call final_answer, falls back to the reply's text.
        """
        prompt = render(load_prompt("final_answer_code"), task=task)
        message = yield CallModel(
            [*self.memory.to_messages(), ChatMessage("user", prompt)], stop=["Observation:"]
        )
        try:
            code = self._extract_code(message.text)
            result = yield RunCode(code)
        except (AgentParsingError, ExecutionError, ApprovalRequired):  # no pausing once the steps ran out
            return message.text, message.token_usage
        if result.is_final_answer:
            return result.output, message.token_usage
        return message.text, message.token_usage

    def _repeats_previous_step(self, step: ActionStep) -> bool:
        """True when `step` ran the previous action step's code again and got the same observation.

        Small models fall into such loops until the steps run out; the code still runs (polling a tool that
        changes is legitimate), only the observation says that nothing changed.
        """
        previous = next((s for s in reversed(self.memory.steps) if isinstance(s, ActionStep)), None)
        return (
            previous is not None
            and previous.error is None
            and (previous.code_action or "").strip() == (step.code_action or "").strip()
            and (previous.observations or "").split("\n" + load_prompt("repeated_step").strip())[0]
            == step.observations
        )

    def _tools_for_code(self, callables: dict[str, Any]) -> dict[str, Any]:
        """The tools as the executor gets them: through the agent's hooks and approval gate when it has any.

        `callables` are what actually runs each tool (the tools, or wrappers that journal their calls); the gate
        goes outside them, so a call that pauses or is denied never reaches the journal.
        """
        gated = self.tool_gate.active or any(
            getattr(t, "requires_approval", False) for t in self.tools.values()
        )
        if not gated:
            return dict(callables)
        return {
            name: call if name == "final_answer" else GatedTool(self.tools[name], self.tool_gate, self, call)
            for name, call in callables.items()
        }

    def _paused_in_code(
        self, step: ActionStep, paused: ApprovalRequired
    ) -> Generator[ev.Event | Effect, Any, Any]:
        """The snippet stopped at a call that needs approval: pause the run, then act on the decision.

        In this process the snippet cannot continue where it stopped, so the decided call is finished here:
        approved, it runs (once, through the after hooks) and the model sees its result; denied, the model sees
        why. Either way the code after the call did not run, and the variables it set before the call are kept.
        A durable resume (codeloop.resume) instead replays the snippet with its earlier calls answered from the
        record and this call decided by `tool_gate.preset(...)`, so the snippet goes on at the call.
        """
        step.observations = paused.logs or None
        waiting = list(paused.pending)
        notes: list[str] = []
        while waiting:
            decisions = yield AwaitApproval(waiting, step)
            approved = [p for p in waiting if decisions.get(p.call_id) is True]
            if approved:  # an effect like any tool call: the loop itself does no I/O
                calls = [
                    (ToolCall(p.call_id, p.tool, p.arguments), self.tools[p.tool], p.arguments)
                    for p in approved
                ]
                outputs = yield CallTools(calls)
                notes += [self._approved_call_note(p, out) for p, out in zip(approved, outputs, strict=True)]
            for pending in waiting:
                verdict = decisions.get(pending.call_id)
                if isinstance(verdict, str):
                    notes.append(f"The call {pending} was denied: {verdict}. It was not run.")
            waiting = [p for p in waiting if p.call_id not in decisions]
        step.observations = "\n".join(
            [*([paused.logs] if paused.logs else []), *notes,
             "The code after this call did not run; variables set before it are kept."]
        )  # fmt: skip
        yield ev.Observation(step.observations, step.step_number)
        return NO_ANSWER

    def _approved_call_note(self, pending: PendingCall, output: Any) -> str:
        if isinstance(output, BaseException):
            return f"The call {pending} was approved and run, and failed: {type(output).__name__}: {output}"
        tool = self.tools[pending.tool]
        info = ToolCallInfo(pending.call_id, pending.tool, dict(pending.arguments), tool, self, self._run_id)
        output = self.tool_gate.finish(info, output)
        return f"The call {pending} was approved and run; it returned:\n{short_repr(output)}"

    def _extract_code(self, text: str) -> str:
        if not self.use_structured_outputs:
            return extract_code(text)
        from .models.structured import parse_code_action

        try:
            return parse_code_action(text)[1]
        except ValueError as exc:
            raise AgentParsingError(f"Your reply could not be used: {exc}.") from exc

    def _run_code(self, code: str) -> Any:
        return self.executor.run(code)

    def _attach_output(self, callback: Callable[[str], None] | None) -> None:
        self.executor.on_output = callback

    def _close_owned(self) -> None:
        # An executor made from a name is the agent's; an Executor instance passed in stays the caller's.
        executor, self._executor = self._executor, None
        if executor is not None and isinstance(self.executor_spec, str):
            executor.close()


_FINAL_ANSWER_STUB = '''def final_answer(answer: Any) -> None:
    """Ends the task with `answer` (any Python object) as the result."""'''


# --- helpers ----------------------------------------------------------------------------------------------------


def _call_flexibly(fn: Callable[..., Any], *args: Any) -> Any:
    """Call `fn` with as many leading positional `args` as it accepts."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(*args)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return fn(*args)
    n = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return fn(*args[:n])
