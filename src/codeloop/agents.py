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
from .agent_approval import ApprovalMixin
from .agent_parts import build_tool_table
from .approval import ApprovalRequired, AwaitingApproval
from .compaction import DEFAULT_COMPACTION, AgentKind, MaskObservations, check_fits, compact, resolve_policy
from .durable import Durability, JournalFactory
from .effects import AwaitApproval, CallModel, Done, Effect
from .errors import (
    AgentError,
    AgentGenerationError,
    AgentInterrupted,
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
from .models.base import ChatMessage, Model, TokenUsage
from .prompts import load_prompt, render

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MultiStepAgent", "StepCallback", "FinalAnswerCheck", "NO_ANSWER"]

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
UNUSED_TOOLS_REMINDER_LIMIT = 6
"""`remind_unused_tools` applies to agents with at most this many tools: with a large toolbox most go unused."""


@dataclass
class _Budget:
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_duration_s: float | None = None


class MultiStepAgent(ApprovalMixin):
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
        store: Any = "default",
        tools_before_answer: bool = False,
        remind_unused_tools: bool = False,
        journal: JournalFactory | None = None,
        approval: Callable[..., Any] | None = None,
        before_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        after_tool_call: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        compaction: MaskObservations | None = DEFAULT_COMPACTION,
    ) -> None:
        """`compaction`: what of a long run the model sees (`codeloop.compaction`): by default old steps shrink
        in batches (a CodeAgent's to one line each) and requests stay within the model's known context window;
        None sends everything.
        `tools_before_answer`: refuse, once, an answer given before any tool ran. `remind_unused_tools`: hold
        back, once, an answer computed from tool results never shown while some of the agent's tools (at most
        `UNUSED_TOOLS_REMINDER_LIMIT`) went uncalled, naming them (CodeAgent; off by default: it also fires where
        skipping a tool is right, such as an answer built on `user_input` or a managed agent's reply).
        """
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
        self._run_session: str | None = None  # the session of the run in progress (the journal records it)
        self._last_step = 0
        self.tools_before_answer = tools_before_answer
        self.remind_unused_tools = remind_unused_tools
        self._answer_refused_for_tools = False
        self._last_result: RunResult | None = None
        self._stop_error: BaseException | None = None
        # Recording is a listener (store/recorder.py); an explicit store is opened now so a bad one fails here.
        from .store.binding import AgentStore

        self._store = AgentStore(store)
        self._recorder: Callable[[ev.Event], None] | None = None
        # Every effect is journaled (into `journal=`, else the store's journal, else memory), so runs can resume.
        self._durable = Durability(journal)
        if journal is None:
            agent_store = self._store
            self._durable.store_journal = lambda: (
                None if agent_store.store is None else agent_store.store.journal
            )
        self._run_request: tuple[str, list[dict[str, Any]], int] = ("", [], 0)
        self._init_approval(approval, before_tool_call, after_tool_call)

        self.managed_agents: dict[str, MultiStepAgent] = {}
        self.tools: dict[str, Any] = {}
        self._register_tools(tools, managed_agents, add_base_tools)
        self.memory = AgentMemory(self.system_prompt())
        self._run_steps_start = 0
        self.compaction = resolve_policy(compaction)
        check_fits(
            self.compaction, self.model, self.memory.system_prompt.system_prompt, extra=self._context_extra()
        )

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

            defaults = base_tools("code" if self.prompt_name == "code_agent" else "tool-calling")
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
        session: str | None = None,
    ) -> Any:
        """Run the agent on `task` and return the final answer (or a `RunResult`, or an event iterator).

        `reset=False` continues the previous conversation. `session="user-42"` continues that session's
        conversation as the run store holds it (from any process) and records this run in it.
        `additional_args` become variables the code can use.
        An error that ends the run is raised with `.result` (a `RunResult` holding every step so far) unless
        `return_full_result=True`, which returns that result instead.
        """
        loop = self._start(task, reset, images, additional_args, max_steps, session)
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
        session: str | None = None,
    ) -> Any:
        """Async twin of `run`: model calls are awaited, code and sync tools run in worker threads."""
        loop = self._start(task, reset, images, additional_args, max_steps, session)
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
        session: str | None = None,
    ) -> AsyncIterator[ev.Event]:
        """The run's events as an async iterator; the last one is `RunFinished`."""
        return self._adrive(self._start(task, reset, images, additional_args, max_steps, session))

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

    def replay(self, detailed: bool = False, run_id: str | None = None) -> None:
        """Print the steps of a run again: `run_id` (default: the last run) as the run store holds it.

        Without a store, the agent's memory is printed.
        """
        from .console import ConsoleRenderer

        steps: list[MemoryStep] = self.memory.steps
        store = self._store.store
        if store is not None and (run_id or self._run_id):
            steps = [MemoryStep.from_dict(d) for d in store.steps(run_id or self._run_id)]
        ConsoleRenderer(level=2 if detailed else 1).replay(steps, self.name or type(self).__name__)

    @property
    def store(self) -> Any:
        """The run store this agent records into (`codeloop.store.Store`), or None when recording is off."""
        return self._store.store

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
        session: str | None = None,
        resuming: str | None = None,
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
        check_fits(self.compaction, self.model, self.system_prompt(), task, self._context_extra())
        self._take_over_decisions()
        self._recorder = self._store.begin(
            self, session
        )  # None when not recording (then a session is refused)
        self._run_session = session
        if session is not None:  # the session's conversation as the store holds it, written by any process
            self.memory = AgentMemory(self.system_prompt())
            # a resumed run's own steps are replayed from its journal, not read back as conversation
            self.memory.steps = self._store.session_steps(session, exclude=resuming)
        elif reset:
            self.memory = AgentMemory(self.system_prompt())
        self._interrupt.clear()
        self._stop_error = None
        self._last_result = None
        self._failed_listeners.clear()
        return self._loop(task, image_parts(images or ()), self.max_steps if max_steps is None else max_steps)

    def _loop(self, task: str, images: list[dict[str, Any]], max_steps: int) -> _Loop:
        timing = Timing()
        first = self._run_first = len(self.memory.steps)
        self._run_timing = timing
        self.memory.steps.append(TaskStep(task=task, images=images))  # memory = [task]
        self._prepare_run()
        run_id = self._run_id = self._durable.next_run_id(new_run_id)
        self._run_request = (task, images, max_steps)
        yield ev.RunStarted(
            task, model_id=getattr(self.model, "model_id", ""), run_id=run_id, max_steps=max_steps
        )
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
        self._answer_refused_for_tools = False

    def _called_no_tool(self) -> bool:
        """Whether no tool (other than final_answer) has run in this run; subclasses that can tell override it."""
        return False

    def _tools_not_called(self) -> list[str]:
        """The agent's tools not called yet in this run; subclasses that can tell override it."""
        return []

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
            messages = [*(yield from self._context()), ChatMessage("user", prompt)]
        step = PlanningStep()
        message = yield CallModel(messages, stop=["<end_plan>"], stream=self.stream_outputs)
        step.plan = message.text.replace("<end_plan>", "").strip()
        step.model_output_message, step.token_usage = message, message.token_usage
        step.timing.end()
        self.memory.steps.append(step)
        self._callbacks(step)
        yield ev.PlanCreated(step)

    def _model_input(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, list[ChatMessage]]:
        """The messages for `step`'s model call: the memory, and on the last of several steps a notice saying so.

        A small model that has printed the answer often keeps checking it until the steps run out; told that
        this step is the last, it calls final_answer with what it has.
        """
        messages = yield from self._context(step)
        if step.step_number == self._last_step > 1:
            messages.append(ChatMessage("user", load_prompt("last_step").strip()))
        return messages

    def _context(
        self, step: ActionStep | None = None
    ) -> Generator[ev.Event | Effect, Any, list[ChatMessage]]:
        """The memory as the model is shown it under `self.compaction` (a summary is asked for as an effect).

        For an action step, the step records what compaction did, and a summariser's tokens count as its own.
        """
        if self.compaction is None:
            return self.memory.to_messages()
        kind: AgentKind = "code" if self.prompt_name == "code_agent" else "tools"
        view = yield from compact(
            self.compaction,
            self.memory,
            model=self.model,
            kind=kind,
            extra=self._context_extra(),
            may_summarize=step is not None,
        )
        if step is not None:
            step.context_note = view.note
            step.token_usage = combined_usage(step.token_usage, view.usage)
        return view.messages

    def _context_extra(self) -> str:
        """Hook for subclasses: text sent with every request beside the messages (tool schemas)."""
        return ""

    def _forced_final_answer(self, task: str) -> Generator[ev.Event | Effect, Any, Any]:
        prompt = render(load_prompt("final_answer"), task=task)
        message = yield CallModel([*(yield from self._context()), ChatMessage("user", prompt)])
        return message.text, message.token_usage

    def _check_final_answer(self, answer: Any) -> None:
        names = [name for name in self.tools if name != "final_answer"]
        if (
            self.tools_before_answer
            and names
            and not self._answer_refused_for_tools
            and self._called_no_tool()
        ):
            # Small models answer from invented data; asked once to fetch it, they usually call the tools.
            self._answer_refused_for_tools = True
            raise AgentError(render(load_prompt("answer_before_tools"), tools=", ".join(names)).strip())
        unused = self._tools_not_called() if self.remind_unused_tools else []
        if unused and len(names) <= UNUSED_TOOLS_REMINDER_LIMIT and not self._answer_refused_for_tools:
            # A small model that skips a lookup tool types the data in itself (a race time, a recipe's weight).
            self._answer_refused_for_tools = True
            prompt = load_prompt("answer_with_unused_tools")
            raise AgentError(render(prompt, tools=", ".join(unused), answer=short_repr(answer, 200)).strip())
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
        listeners = [self._console, *self.listeners] if self._console else list(self.listeners)
        listeners += ev.process_listeners()  # process-wide instrumentation (codeloop.telemetry)
        if self._recorder is not None:  # first: the record is written before anyone else sees the event
            listeners.insert(0, self._recorder)
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:
                if getattr(exc, "stops_run", False):  # e.g. the run store is full: end the run as an error
                    self._stop_error = exc
                    continue
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
                self._durable.observe(self, item)
                self._emit(item)
                yield item
                continue
            if (error := self._take_stop_error()) is not None:  # not performed: thrown where it was asked for
                continue
            if isinstance(item, AwaitApproval):  # answered from decisions already given, or the run pauses
                value = self._approval_answer(item)
                if value is None:
                    yield self._pause(loop, item, is_async=False)
                    return
                continue
            try:
                for out in self._durable.perform(item, self.model, self._run_code):
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
                self._durable.observe(self, item)
                self._emit(item)
                yield item
                continue
            if (error := self._take_stop_error()) is not None:  # not performed: thrown where it was asked for
                continue
            if isinstance(item, AwaitApproval):  # answered from decisions already given, or the run pauses
                value = self._approval_answer(item)
                if value is None:
                    yield self._pause(loop, item, is_async=True)
                    return
                continue
            try:
                async for out in self._durable.aperform(item, self.model, self._run_code):
                    if isinstance(out, Done):
                        value = out.value
                    else:
                        self._emit(out)
                        yield out
            except (Exception, KeyboardInterrupt, ApprovalRequired) as exc:
                error = exc

    def _take_stop_error(self) -> BaseException | None:
        error, self._stop_error = self._stop_error, None
        return error

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


def combined_usage(first: TokenUsage | None, second: TokenUsage | None) -> TokenUsage | None:
    """The sum of two model calls' usage, either of which may be unknown (None)."""
    if first is None:
        return second
    return first + second


def _total_usage(steps: list[MemoryStep]) -> TokenUsage:
    usage = TokenUsage()
    for step in steps:
        usage = usage + getattr(step, "token_usage", None)
    return usage


class _BudgetExceeded(Exception):
    """A budget (tokens, cost, duration) would be exceeded by the next model call."""


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
