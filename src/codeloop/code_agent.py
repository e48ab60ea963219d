"""`CodeAgent`: the agent whose actions are Python snippets, run in an executor whose state persists.

The loop itself is `MultiStepAgent`'s (in `agents.py`); this module holds what is particular to code actions: the
prompt's tool stubs and examples, running a snippet as the `RunCode` effect, what the model sees after a step
(printed output, the last value, the step's tool results when it printed nothing or failed), and the forced
final answer that runs a `final_answer(...)` call instead of accepting prose.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from . import events as ev
from ._checks import check_limit
from ._text import short_repr
from .agent_parts import check_code_tool_name, check_executor
from .agents import DEFAULT_AUTHORIZED_IMPORTS, NO_ANSWER, MultiStepAgent, combined_usage
from .approval import ApprovalRequired, GatedTool, PendingCall, ToolCallInfo
from .effects import AwaitApproval, CallModel, CallTools, Effect, RunCode
from .errors import AgentExecutionError, AgentParsingError, ExecutionError
from .memory import ActionStep
from .models.base import ChatMessage, Model, ToolCall
from .parsing import drop_tool_redefinitions, extract_code
from .prompts import load_prompt, render
from .tool_log import ToolCallLog, preview

__all__ = ["CodeAgent"]


class CodeAgent(MultiStepAgent):
    """An agent whose actions are Python snippets run by an executor; tools are Python functions in its code."""

    prompt_name = "code_agent"
    _resumes_in_process = (
        False  # a snippet paused at a call goes on at that call only by replaying the journal
    )

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
        look_before_answer: bool = False,
        **kwargs: Any,
    ) -> None:
        """Args beyond `MultiStepAgent`'s (see the README for executors and imports):

        look_before_answer: hold back, once per run, a final answer computed in the same step that first
            fetched tool data: the model is shown what the tools returned beside the value and asked to confirm
            it or fix the code. Small models index data they never printed (wrong keys, units, currencies).
        """
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
        self.look_before_answer = look_before_answer
        self._tool_data_seen = False
        self._answered_blind = False  # the step's final answer came before any tool result was shown
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

    def _called_no_tool(self) -> bool:
        return self._tool_log.calls_in_run == 0

    def _tools_not_called(self) -> list[str]:
        # Only an answer computed from tool results never shown, by code that fetched some data and skipped
        # other tools: one given after looking at the data is the model's considered choice, one that needed no
        # tool at all is left to `tools_before_answer` (and a general toolbox rarely needs every tool).
        called = self._tool_log.names_in_run
        if not self._answered_blind or not called:
            return []
        return [name for name in self.tools if name != "final_answer" and name not in called]

    def _prepare_run(self) -> None:
        super()._prepare_run()
        self._tool_data_seen = False
        log = self._tool_log
        log.start_run()
        # journaled innermost: a replayed call is answered from the journal and still logged for the step;
        # the approval gate outermost, so a call that pauses or is denied is neither logged nor journaled
        journaled = self._durable.wrap_tools(self.tools)
        logged = {
            name: tool if name == "final_answer" else log.wrap(name, tool) for name, tool in journaled.items()
        }
        self.executor.send_tools(self._tools_for_code(logged))
        if self.state:
            self.executor.send_variables(dict(self.state))

    def _step(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, Any]:
        if self.use_structured_outputs:
            from .models.structured import code_action_response_format

            effect = CallModel(
                (yield from self._model_input(step)), response_format=code_action_response_format()
            )
        else:
            effect = CallModel((yield from self._model_input(step)), stop=["Observation:"])
        effect.stream = self.stream_outputs
        message = yield effect
        step.model_output_message = message
        step.token_usage = combined_usage(step.token_usage, message.token_usage)
        step.model_output = message.text
        yield ev.ModelOutput(message, step.step_number)
        step.code_action = code = self._extract_code(message.text)
        yield ev.CodeAction(code, step.step_number)
        code, redefined = drop_tool_redefinitions(code, {*self.tools, "final_answer"})
        attach = self._attach_output if self.stream_outputs and hasattr(self.executor, "on_output") else None
        self._tool_log.clear()
        self.tool_gate.start_step(step.step_number)
        try:
            result = yield RunCode(code, attach)
        except ExecutionError as exc:
            step.observations = exc.logs or None
            step.variables = _variables_line(str(exc))
            # the real keys and values, so a guessed one can be fixed: named right under the error, then every call
            text = _insert_after_exception(str(exc), self._tool_log.missing_key_hint(str(exc)))
            calls = self._tool_log.render()
            self._tool_data_seen = self._tool_data_seen or bool(calls)  # the error shows what they returned
            if self._repeats_failed_step(step, text):
                text += "\n" + load_prompt("repeated_error").strip()
            raise AgentExecutionError(f"{text}\n{calls}" if calls else text) from exc
        except ApprovalRequired as paused:
            return (yield from self._paused_in_code(step, paused))
        calls = self._tool_log.render()
        if result.is_final_answer and calls and self.look_before_answer and not self._tool_data_seen:
            self._tool_data_seen = True
            step.observations = "\n".join(
                filter(None, [result.logs.rstrip(), calls, self._look_note(result.output)])
            )
            yield ev.Observation(step.observations, step.step_number)
            return NO_ANSWER
        self._answered_blind = result.is_final_answer and not self._tool_data_seen
        self._tool_data_seen = self._tool_data_seen or bool(calls)
        step.action_output = result.output
        step.variables = getattr(result, "variables", None) or None
        observation = result.logs
        if not result.is_final_answer and result.output is not None:
            # Prefer the executor's own rendering: made inside the step, under its limits, by agent-defined reprs.
            rendered = getattr(result, "output_repr", None) or short_repr(result.output)
            observation += f"Last output from code snippet:\n{short_repr(rendered)}"
        if not observation and not result.is_final_answer:
            # Tools were called but nothing was looked at: show what they returned instead of nothing.
            observation = self._tool_log.render()
        step.observations = observation or "(the code printed nothing)"
        if redefined:
            names = ", ".join(dict.fromkeys(redefined))
            step.observations += f"\n(Your code's import or definition of {names} was skipped: the real tool is already there; call it.)"
        if self._repeats_previous_step(step):
            step.observations += self._repeat_note(step.observations)
        yield ev.Observation(step.observations, step.step_number)
        return result.output if result.is_final_answer else NO_ANSWER

    def _forced_final_answer(self, task: str) -> Generator[ev.Event | Effect, Any, Any]:
        """Ask for code that calls final_answer with what the session holds, and run it.

        The answer is then the value the code computed (a number stays a number), not prose about it. A reply
        without code is taken as the answer's text; code that fails or does not call final_answer gives no
        answer (the real model's `final_answer(decrypted_text)` on an undefined name was reported as one).
        """
        prompt = render(load_prompt("final_answer_code"), task=task)
        message = yield CallModel(
            [*(yield from self._context()), ChatMessage("user", prompt)], stop=["Observation:"]
        )
        try:
            code = self._extract_code(message.text)
        except AgentParsingError:
            return message.text, message.token_usage  # an answer written as text
        try:
            result = yield RunCode(code)
        except (ExecutionError, ApprovalRequired):  # no pausing once the steps ran out
            return None, message.token_usage  # the text is code that failed, not an answer
        return (result.output if result.is_final_answer else None), message.token_usage

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
            and (previous.observations or "").removesuffix(self._repeat_note(step.observations or ""))
            == step.observations
        )

    def _repeats_failed_step(self, step: ActionStep, error: str) -> bool:
        """True when `step` ran the previous action step's code again and it failed on the same line the same way.

        The real 1.5B model sent the same failing code four times running (a `KeyError` from `globals()`), each
        time with the same reply to the same error. The note tells a model that can change course that it must;
        the 1.5B model repeated its code regardless (measured), so the note is all this costs.
        """
        previous = next((s for s in reversed(self.memory.steps) if isinstance(s, ActionStep)), None)
        first_line = error.partition("\n")[0]
        return (
            previous is not None
            and previous.error is not None
            and (previous.code_action or "").strip() == (step.code_action or "").strip()
            and previous.error.partition("\n")[0] == first_line
        )

    @staticmethod
    def _look_note(answer: Any) -> str:
        return render(load_prompt("look_before_answer"), answer=preview(answer, 200)).strip()

    def _repeat_note(self, observation: str) -> str:
        """The note on a repeated step, with what its tool calls returned (same code, same calls, same results).

        A real 1.5B model repeated `if "departure" in flight: ... else: print("no departure")` until the steps
        ran out: its own output never showed the data, so the note alone gave it nothing new to use.
        """
        calls = self._tool_log.render()
        return _repeated_step_note() + (f"\n{calls}" if calls and calls not in observation else "")

    def _tools_for_code(self, callables: dict[str, Any]) -> dict[str, Any]:
        """The tools as the executor gets them: through the agent's hooks and approval gate when it has any.

        `callables` are what actually runs each tool (the tools, or wrappers that journal their calls); the gate
        goes outside them, so a call that pauses or is denied never reaches the journal.
        """
        # A managed agent's call may pause for approval: the gate names its calls as the manager's.
        gated = (
            self.tool_gate.active
            or bool(self.managed_agents)
            or any(getattr(t, "requires_approval", False) for t in self.tools.values())
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
        # An executor made from a name or taken from a pool is the agent's; an Executor instance stays the caller's.
        from .executors.kinds import creates_executor

        executor, self._executor = self._executor, None
        if executor is not None and creates_executor(self.executor_spec):
            executor.close()


_FINAL_ANSWER_STUB = '''def final_answer(answer: Any) -> None:
    """Ends the task with `answer` (any Python object) as the result."""'''


def _insert_after_exception(error: str, note: str) -> str:
    """`error` with `note` on the line after its `KeyError: ...` line (where a model reading the error looks)."""
    if not note:
        return error
    lines = error.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("KeyError: ")), len(lines) - 1)
    return "\n".join([*lines[: at + 1], note, *lines[at + 1 :]])


def _repeated_step_note() -> str:
    """What is appended to the observation of a step that repeated the previous one (and removed to compare)."""
    return "\n" + load_prompt("repeated_step").strip()


def _variables_line(message: str) -> str | None:
    """The executor's "Variables defined now: ..." line at the end of an error message, if there is one."""
    for line in reversed(message.splitlines()):
        if line.startswith("Variables defined now: "):
            return line
    return None
