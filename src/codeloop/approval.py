"""Human approval and tool hooks: every tool call an agent makes passes through one `ToolGate`.

The gate runs, in order, for each call (a ToolCallingAgent's JSON call, or a call a CodeAgent's code makes, in
any executor; a managed agent called as a tool too):

1. the `before_tool_call` hooks: each sees a `ToolCallInfo` and may change its `arguments`, return a new
   arguments dict, or refuse the call with `deny("why")` (the model is shown the refusal and can act on it);
2. the approval decision: a tool made with `requires_approval=True` asks, the agent's `approval=` policy
   `(tool, arguments, context) -> allow | deny(reason) | ask` decides the rest, and the stricter of the two wins
   (deny > ask > allow);
3. the call itself, then the `after_tool_call` hooks, each of which may return a replacement result.

"ask" pauses the run: its `RunResult` has `state == "awaiting_approval"` and `pending` lists the calls
(`PendingCall`: call_id, tool, arguments). Decisions come back as `approvals={call_id: True | False | "reason to
deny"}`. Call ids are deterministic across a replay: a ToolCallingAgent's come from the model's tool-call ids; a
CodeAgent's are f"{step_number}.{n}", the n-th tool call (from 1) made by that step's code.

Inside a CodeAgent's code the pause is `ApprovalRequired`, a `BaseException`: the executor stops the snippet at
that call (the code's own `try/except` cannot carry on past it) and keeps its variables.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .errors import AgentError

__all__ = [
    "Allow",
    "Deny",
    "Ask",
    "Decision",
    "ALLOW",
    "ASK",
    "allow",
    "deny",
    "ask",
    "PendingCall",
    "ToolCallInfo",
    "ApprovalRequired",
    "ManagedAgentPaused",
    "AwaitingApproval",
    "ApprovalPolicy",
    "BeforeToolCall",
    "AfterToolCall",
    "ToolGate",
    "GatedTool",
    "nested_pending",
    "normalize_approvals",
    "coerce_decisions",
]


@dataclass(frozen=True)
class Allow:
    """Run the call."""


@dataclass(frozen=True)
class Deny:
    """Do not run the call; the model is told `reason`."""

    reason: str = "denied by the approval policy"


@dataclass(frozen=True)
class Ask:
    """Pause the run until a person decides (`agent.resume(run_id, approvals={call_id: ...})`)."""

    reason: str = ""


Decision: TypeAlias = Allow | Deny | Ask
ALLOW = Allow()
ASK = Ask()


def allow() -> Allow:
    """The decision that lets a call run."""
    return ALLOW


def deny(reason: str = "denied by the approval policy") -> Deny:
    """The decision that refuses a call; `reason` is shown to the model."""
    return Deny(reason)


def ask(reason: str = "") -> Ask:
    """The decision that pauses the run until a person approves or denies the call."""
    return Ask(reason)


@dataclass(frozen=True)
class PendingCall:
    """A tool call waiting for a person's decision."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str = ""
    """Why approval is needed, when the policy said (`ask("why")`)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arguments that are not JSON become their repr)."""
        from .memory import to_jsonable

        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "arguments": to_jsonable(self.arguments),
            "reason": self.reason,
        }

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.call_id}: {self.tool}({args})"


@dataclass
class ToolCallInfo:
    """What a hook or approval policy sees of one tool call. `arguments` may be changed in place by hooks."""

    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    tool: Any = None
    """The tool object (a `Tool`, or a managed agent's tool)."""
    agent: Any = None
    run_id: str = ""
    step_number: int | None = None


ApprovalPolicy: TypeAlias = Callable[[Any, dict[str, Any], ToolCallInfo], Any]
"""`policy(tool, arguments, context)` -> `allow()` / `deny(reason)` / `ask()` (or True / False / "allow" / "ask")."""
BeforeToolCall: TypeAlias = Callable[[ToolCallInfo], Any]
"""`hook(call)` -> None (go on, with `call.arguments` as they now are), a new arguments dict, or `deny(reason)`."""
AfterToolCall: TypeAlias = Callable[[ToolCallInfo, Any], Any]
"""`hook(call, result)` -> None (keep the result) or the result to use instead."""


class ApprovalRequired(BaseException):  # noqa: N818 - a control-flow signal, like StopIteration
    """Control flow: a tool call needs a person's decision, so the step (and the run) pauses.

    A `BaseException` so that agent code's `except Exception:` cannot swallow it; executors also stop the
    snippet at the call and refuse every later tool call of that step, so even `except BaseException:` cannot
    carry on past it. `logs` holds what the code printed before the pause.
    """

    def __init__(self, pending: Sequence[PendingCall], logs: str = "") -> None:
        super().__init__(", ".join(str(p) for p in pending))
        self.pending = list(pending)
        self.logs = logs


class ManagedAgentPaused(ApprovalRequired):  # noqa: N818 - a control-flow signal, like its base
    """Control flow: a managed agent's run paused for approval inside its manager's call, so the manager pauses.

    `pending` are the managed agent's calls; on the way out of the manager's `GatedTool` their ids get the
    manager's call id in front (`"1.1/c1"`: the manager's call 1.1 to the managed agent, and its call c1), so
    one `approvals={...}` on the manager's run decides them. The manager's journal keeps `run_id` (the managed
    agent's paused run), which its resume continues with those decisions.
    """

    def __init__(self, agent_name: str, run_id: str, pending: Sequence[PendingCall], logs: str = "") -> None:
        super().__init__(pending, logs)
        self.agent_name = agent_name
        self.run_id = run_id


NESTED_DECISIONS: ContextVar[dict[str, Any] | None] = ContextVar("codeloop_nested_decisions", default=None)
"""While a manager's call to a managed agent runs: the decisions given for that agent's own calls (their ids
without the manager's call id in front), which continuing its paused run applies."""


class AwaitingApproval(AgentError):  # noqa: N818 - it names the state the run is in
    """Raised by `agent.run(...)` (without `return_full_result=True`) when the run paused for approval.

    `.result` is the paused `RunResult` and `.pending` its pending calls; continue with
    `agent.resume(result.run_id, approvals={call_id: True | False | "reason"})`.
    """

    def __init__(self, result: Any) -> None:
        self.result = result
        self.pending: list[PendingCall] = list(result.pending)
        listing = "\n".join(f"  {p}" for p in self.pending)
        super().__init__(
            f"the run paused: {len(self.pending)} tool call(s) await approval:\n{listing}\nContinue it with "
            f"agent.resume({result.run_id!r}, approvals={{call_id: True | False | 'reason to deny'}})"
        )


def normalize_approvals(
    approvals: Mapping[str, Any], pending: Sequence[PendingCall]
) -> dict[str, Allow | Deny]:
    """Decisions given to `resume`, checked against the `pending` calls: call_id -> `Allow` or `Deny`.

    True approves, False denies, a string denies with that reason (so does `deny(...)`; `allow()` approves).
    An unknown call id raises `ValueError` listing the pending ones; so does a value of another kind.
    """
    if not isinstance(approvals, Mapping):
        raise TypeError(
            f"approvals must be a dict {{call_id: True | False | 'reason to deny'}}, got {type(approvals).__name__}"
        )
    known = {p.call_id: p for p in pending}
    listing = "; ".join(str(p) for p in pending) or "(none)"
    for call_id in approvals:
        if call_id not in known:
            raise ValueError(f"no pending tool call has the id {call_id!r}; the pending calls are: {listing}")
    return coerce_decisions(approvals, {k: p.tool for k, p in known.items()})


def coerce_decisions(
    approvals: Mapping[str, Any], tools: Mapping[str, str] | None = None
) -> dict[str, Allow | Deny]:
    """`approvals` values as `Allow` / `Deny` (True, False, a reason string, `allow()`, `deny(...)`), ids unchecked.

    `tools` (call id -> tool name) only makes the error for a value of another kind name the tool.
    """
    decisions: dict[str, Allow | Deny] = {}
    for call_id, value in approvals.items():
        if value is True or isinstance(value, Allow):
            decisions[call_id] = ALLOW
        elif value is False:
            decisions[call_id] = Deny("denied by the user")
        elif isinstance(value, str):
            decisions[call_id] = Deny(value.strip() or "denied by the user")
        elif isinstance(value, Deny):
            decisions[call_id] = value
        else:
            tool = f" ({tools[call_id]})" if tools and call_id in tools else ""
            raise ValueError(
                f"the decision for call {call_id!r}{tool} is {value!r}; use True to approve, "
                "False to deny, or a string giving the reason to deny"
            )
    return decisions


def _as_decision(value: Any, tool_name: str) -> Decision:
    """A policy's return value as a `Decision`; anything unexpected raises naming the tool."""
    if isinstance(value, Allow | Deny | Ask):
        return value
    if value is True or value == "allow":
        return ALLOW
    if value is False or value == "deny":
        return Deny()
    if value == "ask":
        return ASK
    raise TypeError(
        f"the approval policy returned {value!r} for a call of tool {tool_name!r}; it must return allow(), "
        "deny('reason'), ask() (from codeloop.approval), True / False, or 'allow' / 'deny' / 'ask'"
    )


_STRICTNESS = {Allow: 0, Ask: 1, Deny: 2}


def _callables(kind: str, value: Any) -> list[Callable[..., Any]]:
    items = [] if value is None else list(value) if isinstance(value, list | tuple) else [value]
    for item in items:
        if not callable(item):
            raise TypeError(f"{kind} must be a callable or a list of callables; got {item!r}")
    return items


class ToolGate:
    """An agent's hooks and approval policy, applied to each tool call; decisions given on resume are kept here.

    Args:
        approval: The policy `(tool, arguments, context) -> allow | deny(reason) | ask`, or None.
        before_tool_call: A hook or a list of hooks run before each call (see `BeforeToolCall`).
        after_tool_call: A hook or a list of hooks run after each successful call (see `AfterToolCall`).
    """

    def __init__(
        self,
        approval: ApprovalPolicy | None = None,
        before_tool_call: BeforeToolCall | Sequence[BeforeToolCall] | None = None,
        after_tool_call: AfterToolCall | Sequence[AfterToolCall] | None = None,
    ) -> None:
        if approval is not None and not callable(approval):
            raise TypeError(
                f"approval must be a callable (tool, arguments, context) -> allow() | deny(reason) | ask(); "
                f"got {approval!r}"
            )
        self.approval = approval
        self.before = _callables("before_tool_call", before_tool_call)
        self.after = _callables("after_tool_call", after_tool_call)
        self.decided: dict[str, Allow | Deny] = {}
        """Decisions a person gave (by call id): a call with one of these ids is not asked about again."""
        self._lock = threading.Lock()
        self._step = 0
        self._count = 0

    @property
    def active(self) -> bool:
        """Whether calls need the gate at all (some hook or policy exists, or a tool may ask)."""
        return bool(self.approval or self.before or self.after or self.decided)

    def preset(self, decisions: Mapping[str, Allow | Deny]) -> None:
        """Give decisions for call ids (from `normalize_approvals`); a replayed call with such an id uses them."""
        self.decided.update(decisions)

    def start_step(self, step_number: int) -> None:
        """Number the tool calls a CodeAgent's code makes in this step from 1 again."""
        with self._lock:
            self._step, self._count = step_number, 0

    def next_code_call_id(self) -> tuple[str, int]:
        """The id of the next tool call made from code in this step: f"{step}.{n}", and the step number."""
        with self._lock:
            self._count += 1
            return f"{self._step}.{self._count}", self._step

    def screen(self, call: ToolCallInfo, *, use_decided: bool = True) -> Decision:
        """Run the before hooks on `call` (updating `call.arguments`), then decide: allow, deny or ask.

        `use_decided=False` ignores decisions preset by call id (a ToolCallingAgent gets them through its
        `AwaitApproval` effect instead, so a replay asks for the same effects as the first run).
        """
        for hook in self.before:
            outcome = hook(call)
            if isinstance(outcome, Deny):
                return outcome
            if outcome is False:
                return Deny(f"refused by the hook {getattr(hook, '__name__', repr(hook))}")
            if isinstance(outcome, dict):
                call.arguments = outcome
            elif outcome is not None and outcome is not True:
                raise TypeError(
                    f"the before_tool_call hook {getattr(hook, '__name__', repr(hook))} returned {outcome!r} for "
                    f"a call of tool {call.tool_name!r}; return None, a dict of new arguments, or deny('reason')"
                )
        decided = self.decided.get(call.call_id) if use_decided else None
        if decided is not None:
            return decided
        decision: Decision = ASK if getattr(call.tool, "requires_approval", False) else ALLOW
        if self.approval is not None:
            chosen = _as_decision(self.approval(call.tool, call.arguments, call), call.tool_name)
            if _STRICTNESS[type(chosen)] >= _STRICTNESS[type(decision)]:
                decision = chosen
        return decision

    def finish(self, call: ToolCallInfo, result: Any) -> Any:
        """The result after the after hooks (each may return a replacement; None keeps it)."""
        for hook in self.after:
            replaced = hook(call, result)
            if replaced is not None:
                result = replaced
        return result


class GatedTool:
    """A tool as a CodeAgent's executor sees it: each call from code goes through the agent's `ToolGate`.

    Denied or refused calls raise `PermissionError` in the code (the model reads why); a call that needs
    approval raises `ApprovalRequired`, which pauses the step. Executors call it like the tool itself.
    """

    def __init__(self, tool: Any, gate: ToolGate, agent: Any, call: Callable[..., Any] | None = None) -> None:
        self.tool = tool
        self.gate = gate
        self.agent = agent
        self._call = tool if call is None else call
        self.name: str = getattr(tool, "name", "") or getattr(tool, "__name__", "tool")
        self.description = getattr(tool, "description", None)
        self.__doc__ = getattr(tool, "__doc__", None)
        target = getattr(tool, "_target", None)
        try:
            self._signature: inspect.Signature | None = inspect.signature(target() if target else tool)
        except (TypeError, ValueError):
            self._signature = None

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args:
            return dict(kwargs)
        if self._signature is None:
            raise TypeError(f"{self.name}() takes keyword arguments only")
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
        arguments: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self._signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{self.name}() takes keyword arguments only beyond its named parameters")
            else:
                arguments[name] = value
        return arguments

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call_id, step = self.gate.next_code_call_id()
        call = ToolCallInfo(
            call_id,
            self.name,
            self._arguments(args, kwargs),
            tool=self.tool,
            agent=self.agent,
            run_id=getattr(self.agent, "_run_id", ""),
            step_number=step,
        )
        decision = self.gate.screen(call)
        if isinstance(decision, Deny):
            raise PermissionError(
                f"the call {call_id} of tool {self.name!r} was not run: denied: {decision.reason}"
            )
        if isinstance(decision, Ask):
            raise ApprovalRequired([PendingCall(call_id, self.name, dict(call.arguments), decision.reason)])
        prefix = f"{call_id}/"
        nested = {k[len(prefix) :]: v for k, v in self.gate.decided.items() if k.startswith(prefix)}
        token = NESTED_DECISIONS.set(nested)
        try:
            output = self._call(**call.arguments)
        except ManagedAgentPaused as paused:  # the manager pauses too, on the managed agent's calls
            raise ManagedAgentPaused(
                paused.agent_name,
                paused.run_id,
                [nested_pending(prefix, paused.agent_name, p) for p in paused.pending],
                paused.logs,
            ) from None
        finally:
            NESTED_DECISIONS.reset(token)
        return self.gate.finish(call, output)


def nested_pending(prefix: str, agent_name: str, pending: PendingCall) -> PendingCall:
    """A managed agent's pending call as its manager lists it: the manager's call id in front of its own."""
    why = f"asked by the managed agent {agent_name!r}" + (f": {pending.reason}" if pending.reason else "")
    return PendingCall(prefix + pending.call_id, pending.tool, dict(pending.arguments), why)


@dataclass
class Paused:
    """An in-process run suspended at an approval: its loop, what it waits for, and the paused result."""

    loop: Any
    pending: list[PendingCall]
    result: Any
    is_async: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
