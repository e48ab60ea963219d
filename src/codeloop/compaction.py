"""Context policies: what of a long run the model is shown, so requests stay small and their prefix cacheable.

Without a policy every request carries every earlier observation, so a run's input grows with the square of
its length. An agent's `compaction=` takes one of these policies (or None for the whole history):

- `MaskObservations(keep_last=3, every=3)` (the default): all but the most recent steps shrink. A CodeAgent's
  old steps are condensed to one line each (`codeloop.step_digest`: the calls made, the names set, a short
  output or the error's reason), followed by one line describing the namespace (names, types, sizes): the data
  is still there to print again. A ToolCallingAgent's old steps keep their native calls, and their results
  become a one-line placeholder. This moves in batches: every `every` steps, `every` more steps shrink, and in
  between the prompt only grows at its end, so a provider's prompt cache keeps serving the unchanged prefix (a
  rewrite at every step would break it); the condensed lines of one batch form one message that never changes
  afterwards, so a new batch only appends. With the defaults, runs of up to 6 steps are never changed; later,
  3 to 5 recent steps are shown in full.
- `Summarize(...)`: the steps leaving the window are condensed by a model call into a running summary instead
  (its tokens count in the run's usage and cost). A failing summariser call never ends the run: those steps are
  masked instead, and the step says so in `context_note`.

Both keep requests under a token budget when the model's context window is known (`codeloop.models.context`,
or `context_window=`): the window minus the tokens kept for the reply. Over budget, the oldest steps are left
out in batches (down to 3/4 of the budget, so it does not happen again at the next step); any one observation
is cut to at most half of what the system prompt and task leave free, with a note saying so. A window too small
for the system prompt and the task is refused (`ContextWindowTooSmall`) before any model call.

Only the requests are compacted: the agent's memory keeps every step in full (`agent.memory.to_json()`).
Tokens are estimated without a tokenizer (one per 3 bytes of UTF-8, which over-counts English and code, so the
budget errs on the safe side); pass `token_counter=` to count exactly.
"""

from __future__ import annotations

import dataclasses
import json
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .effects import CallModel
from .errors import AgentGenerationError
from .memory import ActionStep, AgentMemory, TaskStep, ToolResult
from .models.base import ChatMessage, Model, TokenUsage
from .models.context import context_window_of, reserved_output_tokens
from .step_digest import digest_code_step

__all__ = [
    "MaskObservations",
    "Summarize",
    "DEFAULT_COMPACTION",
    "ContextWindowTooSmall",
    "ContextView",
    "TokenCounter",
    "compact",
    "check_fits",
    "estimate_tokens",
]

TokenCounter: TypeAlias = Callable[[str], int]
"""Counts the tokens of a text, e.g. `lambda s: len(tiktoken.get_encoding("o200k_base").encode(s))`."""
AgentKind: TypeAlias = Literal["code", "tools"]

_MESSAGE_OVERHEAD = 4  # role and separators, per message, in every chat template
_IMAGE_TOKENS = 1_600  # the most a provider charges for one image at its default detail
_CODE_PLACEHOLDER = (
    "[Output removed to save context. The variables this code set still exist: print what you need again.]"
)
_TOOL_PLACEHOLDER = "[Result removed to save context. Call the tool again if you need it.]"
_DIGEST_HEADER = (
    "Earlier steps, condensed to save context (their code and output are gone, their variables stay):"
)


def estimate_tokens(text: str) -> int:
    """Tokens in `text` without a tokenizer: one per 3 bytes of UTF-8, rounded up.

    Real tokenizers give 3.5 to 4.5 characters per token on English and code and about one token per CJK
    character (3 bytes), so this over-counts slightly: a budget built on it is not exceeded.
    """
    return -(-len(text.encode("utf-8", "surrogatepass")) // 3)


class ContextWindowTooSmall(ValueError):
    """The model's context window cannot hold the system prompt and the task (and room for the reply)."""


@dataclass(frozen=True)
class MaskObservations:
    """Shrink all but the last `keep_last` steps, `every` steps at a time.

    A CodeAgent's old steps become one line each plus a line describing its variables (`condense_actions`);
    otherwise (and in a ToolCallingAgent) the actions stay and their observations become a placeholder.

    Args:
        keep_last: Steps always shown in full (3 by default, as many tool results as Anthropic's context
            editing keeps: a model mostly reads its last observation, sometimes the one or two before).
        every: How many steps shrink at once (3 by default). Between batches the prompt only grows at its end,
            so cached prefixes stay valid; at most `keep_last + every - 1` steps are shown in full.
        context_window: Tokens the model's window holds; None looks it up (`codeloop.models.context`).
        reserve_tokens: Tokens kept free for the reply; None uses the model's reply cap, else 1/8 of the window.
        token_counter: Counts a text's tokens; None estimates them (`estimate_tokens`).
        condense_actions: A CodeAgent's old steps become one line each (True, the default), or keep their code
            with only the output masked (False: about twice the tokens per old step).
    """

    keep_last: int = 3
    every: int = 3
    context_window: int | None = None
    reserve_tokens: int | None = None
    token_counter: TokenCounter | None = None
    condense_actions: bool = True

    def __post_init__(self) -> None:
        _check_count("keep_last", self.keep_last, 1)
        _check_count("every", self.every, 1)
        if self.context_window is not None:
            _check_count("context_window", self.context_window, 1)
        if self.reserve_tokens is not None:
            _check_count("reserve_tokens", self.reserve_tokens, 0)
        if not isinstance(self.condense_actions, bool):
            raise TypeError(f"condense_actions must be True or False, got {self.condense_actions!r}")
        if self.token_counter is not None and not callable(self.token_counter):
            raise TypeError(
                f"token_counter must be a function of a text, got {type(self.token_counter).__name__}"
            )

    def count(self, text: str) -> int:
        """The tokens of `text`, by `token_counter` or the estimate."""
        return self.token_counter(text) if self.token_counter is not None else estimate_tokens(text)

    def boundary(self, done: int) -> int:
        """How many of the first `done` action steps leave the window (are masked or summarised) now.

        It moves in steps of `every` once `keep_last + every` steps are done, and stays put in between.
        """
        if done < self.keep_last + self.every:
            return 0
        return (done - self.keep_last) // self.every * self.every

    def window(self, model: Any) -> int | None:
        """The context window for `model`, in tokens, or None when unknown."""
        return self.context_window or context_window_of(model)

    def reserve(self, model: Any, window: int) -> int:
        """Tokens kept free for the reply."""
        return (
            self.reserve_tokens if self.reserve_tokens is not None else reserved_output_tokens(model, window)
        )


@dataclass(frozen=True)
class Summarize(MaskObservations):
    """Condense the steps leaving the window into a running summary written by a model call.

    Args beyond `MaskObservations`'s:
        model: The model that writes the summary; None uses the agent's model. A cheap model is fine.
        max_words: The summary's length the summariser is asked to keep within.
    `every` defaults to 8 here: each batch costs one summariser call reading the steps it condenses.
    """

    every: int = 8
    model: Model | None = None
    max_words: int = 250

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count("max_words", self.max_words, 10)


def _check_count(name: str, value: Any, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


DEFAULT_COMPACTION = MaskObservations()
"""The policy agents use unless told otherwise: keep 3 steps, shrink 3 at a time, respect the known window."""


def resolve_policy(value: Any) -> MaskObservations | None:
    """`value` checked as an agent's `compaction=`: a policy, or None for the whole history every step."""
    if value is None or isinstance(value, MaskObservations):
        return value
    raise TypeError(
        f"compaction={value!r} is not a context policy: pass codeloop.compaction.MaskObservations(...), "
        "Summarize(...), or None to send the whole history at every step"
    )


def check_fits(
    policy: MaskObservations | None, model: Any, system_prompt: str, task: str | None = None, extra: str = ""
) -> None:
    """Raise `ContextWindowTooSmall` when the system prompt (and `task`, when given) leave no room in the window.

    `extra` is text sent with every request beside the messages (tool schemas).
    """
    if policy is None:
        return
    window = policy.window(model)
    if window is None:
        return
    reserve = policy.reserve(model, window)
    system = policy.count(system_prompt) + (policy.count(extra) if extra else 0) + _MESSAGE_OVERHEAD
    needed = system + reserve + (policy.count(task) + _MESSAGE_OVERHEAD if task is not None else 0)
    if needed <= window:
        return
    name = getattr(model, "model_id", "") or type(model).__name__
    what = f"the system prompt (~{system:,} tokens)"
    if task is not None:
        what += f" and the task (~{policy.count(task) + _MESSAGE_OVERHEAD:,} tokens)"
    raise ContextWindowTooSmall(
        f"the context window of {name!r} is {window:,} tokens, too small for {what} plus {reserve:,} tokens kept "
        "for the reply. Use a model with a larger window, shorten the task, instructions or tool descriptions, or "
        "declare the real window with compaction=MaskObservations(context_window=...) if it is larger"
    )


@dataclass
class ContextView:
    """The messages of one request under a policy, and what compacting them did."""

    messages: list[ChatMessage]
    usage: TokenUsage | None = None
    """Tokens the summariser call used (to be counted in the run), when one was made."""
    note: str | None = None
    """What changed in the context for this request (a new batch masked, a summary, a failure), for the step."""


@dataclass
class _State:
    """What a memory's compaction decided so far; kept between steps so the prefix is rebuilt identically."""

    summary: str = ""
    summarized: int = 0  # action steps the summary covers
    summary_failed_at: int = 0  # the boundary a summariser call failed at (not retried before the next batch)
    omitted: int = 0  # action steps left out for the budget
    boundary: int = 0  # the masking boundary of the last request, to report when it moves


_STATES: weakref.WeakKeyDictionary[AgentMemory, _State] = weakref.WeakKeyDictionary()


def _state_for(memory: AgentMemory, done: int) -> _State:
    state = _STATES.get(memory)
    if state is None or max(state.summarized, state.omitted, state.boundary) > done:  # memory was reset
        state = _STATES[memory] = _State()
    return state


def compact(
    policy: MaskObservations,
    memory: AgentMemory,
    *,
    model: Any,
    kind: AgentKind,
    extra: str = "",
    may_summarize: bool = True,
) -> Generator[CallModel, Any, ContextView]:
    """The messages for the next request: `memory` under `policy`, summarising (a `CallModel`) when due.

    `extra` is text sent beside the messages (tool schemas), counted against the budget. With
    `may_summarize=False` no call is made (the existing summary is used, new steps are masked).
    """
    actions = [s for s in memory.steps if isinstance(s, ActionStep)]
    done = len(actions)
    state = _state_for(memory, done)
    boundary = policy.boundary(done)
    notes: list[str] = []
    usage: TokenUsage | None = None
    if (
        isinstance(policy, Summarize)
        and may_summarize
        and boundary > state.summarized
        and boundary > state.summary_failed_at
    ):
        request = _summary_request(policy, memory, state, actions[state.summarized : boundary], kind)
        try:
            reply = yield CallModel(request, model=policy.model)
        except AgentGenerationError as exc:  # the run goes on: these steps are masked instead
            state.summary_failed_at = boundary
            notes.append(
                f"The summariser call failed ({exc}); steps {state.summarized + 1}-{boundary} are masked instead."
            )
        else:
            usage = reply.token_usage
            if reply.text.strip():
                state.summary, state.summarized = reply.text.strip(), boundary
                notes.append(f"Steps 1-{boundary} are summarised.")
            else:
                state.summary_failed_at = boundary
                notes.append(f"The summariser replied with nothing; steps 1-{boundary} are masked instead.")
    if boundary > state.boundary and not isinstance(policy, Summarize):
        if kind == "code" and policy.condense_actions:
            notes.append(
                f"Steps 1-{boundary} are condensed to a line each (the last {done - boundary} are shown)."
            )
        else:
            notes.append(
                f"Observations of steps 1-{boundary} are masked (the last {done - boundary} are shown)."
            )
    state.boundary = boundary

    renderer = _Renderer(policy, memory, kind, state, boundary)
    messages = renderer.render()
    window = policy.window(model)
    if window is not None:
        budget = window - policy.reserve(model, window) - (policy.count(extra) if extra else 0)
        renderer.cap = max(256, (budget - renderer.fixed_tokens()) // 2)
        messages = renderer.render()
        size, omitted = count_messages(policy, messages), state.omitted
        if size > budget:
            # Down to 3/4 of the budget, so the next steps fit without moving the prefix again at each one.
            while size > budget * 3 // 4 and max(state.omitted, state.summarized) < done - 1:
                state.omitted = min(done - 1, max(state.omitted, state.summarized) + policy.every)
                messages = renderer.render()
                size = count_messages(policy, messages)
        if state.omitted > omitted:
            notes.append(
                f"Steps 1-{state.omitted} are left out to fit the context window ({window:,} tokens; "
                f"this request ~{size:,})."
            )
    if renderer.cut:
        notes.append(f"Observations of steps {', '.join(map(str, renderer.cut))} are cut to fit the window.")
    return ContextView(messages, usage, " ".join(notes) or None)


def count_messages(policy: MaskObservations, messages: list[ChatMessage]) -> int:
    """The tokens `messages` make under `policy`'s counter, with per-message overhead and images."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD + policy.count(message.text)
        if isinstance(message.content, list):
            total += _IMAGE_TOKENS * sum(1 for p in message.content if p.get("type") == "image")
        for call in message.tool_calls:
            total += policy.count(call.name) + policy.count(json.dumps(call.arguments, default=str))
    return total


class _Renderer:
    """Turns the memory into messages: left out / summarised, masked, and full steps, in order."""

    def __init__(
        self, policy: MaskObservations, memory: AgentMemory, kind: AgentKind, state: _State, boundary: int
    ) -> None:
        self.policy, self.memory, self.kind, self.state, self.boundary = policy, memory, kind, state, boundary
        self.cap: int | None = None  # most tokens one observation may take
        self.cut: list[int] = []

    def fixed_tokens(self) -> int:
        """What every request carries whatever is compacted: the system prompt and the tasks."""
        fixed = self.memory.system_prompt.to_messages() + [
            m for s in self.memory.steps if isinstance(s, TaskStep) for m in s.to_messages()
        ]
        return count_messages(self.policy, fixed)

    def render(self) -> list[ChatMessage]:
        state = self.state
        hidden = max(state.summarized, state.omitted)
        masked = max(self.boundary, hidden)
        actions = [s for s in self.memory.steps if isinstance(s, ActionStep)]
        variables = _variables_before(actions, masked) if self.kind == "code" else None
        condense = self.kind == "code" and self.policy.condense_actions
        placeholder = _CODE_PLACEHOLDER if self.kind == "code" else _TOOL_PLACEHOLDER
        self.cut = []
        messages = self.memory.system_prompt.to_messages()
        digest: list[str] = []  # condensed steps not yet put in a message
        ordinal = 0
        for step in self.memory.steps:
            if not isinstance(step, ActionStep):
                self._flush(messages, digest, hidden, last=False)
                messages.extend(step.to_messages())
                continue
            ordinal += 1
            if ordinal <= hidden:
                if ordinal == 1:
                    note = self._hidden_note(hidden, variables if masked == hidden else None)
                    messages.append(ChatMessage("user", note, cache_hint=masked == hidden))
                continue
            if ordinal <= masked and condense:
                digest.append(digest_code_step(step, ordinal))
                # One message per batch: a batch's message never changes once made, so the next batch only
                # appends (providers cache by prefix; Anthropic's by whole blocks).
                if ordinal == masked or (ordinal - hidden) % self.policy.every == 0:
                    self._flush(messages, digest, hidden, last=ordinal == masked)
                if ordinal == masked and variables:
                    messages.append(ChatMessage("user", _state_line(variables, masked)))
            elif ordinal <= masked:
                last = ordinal == masked
                messages.extend(_masked(step, placeholder, variables if last else None).to_messages())
                if last:  # everything up to here stays the same until the next batch: a cache breakpoint
                    messages[-1] = dataclasses.replace(messages[-1], cache_hint=True)
            else:
                messages.extend(self._capped(step, ordinal).to_messages())
        return messages

    def _flush(self, messages: list[ChatMessage], digest: list[str], hidden: int, *, last: bool) -> None:
        """Put the condensed steps gathered so far into one message (the first one with a header)."""
        if not digest:
            return
        first = not any(m.role == "user" and m.text.startswith(_DIGEST_HEADER) for m in messages)
        text = "\n".join([_DIGEST_HEADER] * first + digest)
        # Where the condensed part ends, the conversation stays the same until the next batch: a breakpoint.
        messages.append(ChatMessage("user", text, cache_hint=last))
        digest.clear()

    def _hidden_note(self, hidden: int, variables: str | None) -> str:
        state = self.state
        lines = []
        if state.summarized:
            lines.append(
                f"[Summary of steps 1-{state.summarized}, removed to save context:]\n{state.summary}"
            )
        if state.omitted > state.summarized:
            first = state.summarized + 1
            lines.append(f"[Steps {first}-{state.omitted} were left out to fit the context window.]")
        if variables:
            lines.append(variables)
        return "\n".join(lines) or f"[Steps 1-{hidden} were left out.]"

    def _capped(self, step: ActionStep, ordinal: int) -> ActionStep:
        cap = self.cap
        if cap is None:
            return step
        changes: dict[str, Any] = {}
        if step.observations and self.policy.count(step.observations) > cap:
            changes["observations"] = _cut(step.observations, cap, self.policy)
        if any(self.policy.count(r.output) > cap for r in step.tool_results):
            changes["tool_results"] = [
                dataclasses.replace(r, output=_cut(r.output, cap, self.policy))
                if self.policy.count(r.output) > cap
                else r
                for r in step.tool_results
            ]
        if step.error and self.policy.count(step.error) > cap:
            changes["error"] = _cut(step.error, cap, self.policy)
        if not changes:
            return step
        self.cut.append(ordinal)
        return dataclasses.replace(step, **changes)


def _masked(step: ActionStep, placeholder: str, variables: str | None) -> ActionStep:
    """`step` with its observation, tool results and error details replaced by one-line placeholders."""
    text = f"{placeholder}\n{variables}" if variables else placeholder
    changes: dict[str, Any] = {"observation_images": []}
    if step.observations is not None and (len(step.observations) > len(placeholder) or variables):
        changes["observations"] = text
    if step.tool_results:
        changes["tool_results"] = [
            ToolResult(r.call_id, r.name, placeholder, r.is_error) if len(r.output) > len(placeholder) else r
            for r in step.tool_results
        ]
    if step.error is not None and len(step.error) > 200:
        first = step.error.strip().splitlines()[0][:160]
        changes["error"] = f"{first} [details removed to save context]"
    return dataclasses.replace(step, **changes)


def _state_line(variables: str, step: int) -> str:
    """The executor's variables line, said to describe the namespace after `step` (later steps may change it)."""
    described = variables.removeprefix("Variables defined now: ")
    return f"Variables after step {step} (print what you need): {described}"


def _variables_before(actions: list[ActionStep], end: int) -> str | None:
    """The last namespace description among the first `end` action steps."""
    for step in reversed(actions[:end]):
        if step.variables:
            return step.variables
    return None


def _cut(text: str, cap: int, policy: MaskObservations) -> str:
    """`text` shortened to about `cap` tokens: its head and tail, with a note in the middle saying how much went."""
    tokens = max(1, policy.count(text))
    keep = max(200, int(len(text) * cap / tokens) - 200)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :]
    gone = len(text) - len(head) - len(tail)
    return (
        f"{head}\n[... {gone:,} characters cut here to fit the model's context window; print a smaller part to "
        f"see them ...]\n{tail}"
    )


def _summary_request(
    policy: Summarize, memory: AgentMemory, state: _State, steps: list[ActionStep], kind: AgentKind
) -> list[ChatMessage]:
    tasks = [s.task for s in memory.steps if isinstance(s, TaskStep)]
    parts = [f"The agent's task:\n{tasks[-1] if tasks else '(unknown)'}"]
    if state.summary:
        parts.append(f"Summary of steps 1-{state.summarized}:\n{state.summary}")
    for number, step in enumerate(steps, start=state.summarized + 1):
        action = step.model_output or "\n".join(f"{c.name}({c.arguments})" for c in step.tool_calls)
        result = step.observations or ""
        if step.error:
            result += f"\nError: {step.error}"
        parts.append(f"Step {number} action:\n{action[:4000]}\nStep {number} result:\n{result[:4000]}")
    what = "variables it set (they still exist), " if kind == "code" else ""
    system = (
        "You condense the history of an AI agent's work so it can go on with less context. Write a summary that "
        f"replaces the steps below: the facts found (exact values, names, numbers that matter), {what}what failed "
        f"and why, and what remains to do. At most {policy.max_words} words, no preamble."
    )
    return [ChatMessage("system", system), ChatMessage("user", "\n\n".join(parts))]
