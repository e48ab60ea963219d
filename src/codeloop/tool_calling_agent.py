"""`ToolCallingAgent`: the agent whose actions are JSON tool calls, beside the code-writing `CodeAgent`.

It takes the calls of a reply (native `tool_calls`, or JSON written in the text for models without them), checks
each before any runs, runs the valid ones together and shows the model every result. A call names a known tool
and carries a JSON object of valid arguments; `final_answer` comes alone. A model that sends `final_answer`
beside other calls has written its answer before it saw their results (small models do this in most replies),
so that answer is refused: the other calls run, and the refusal tells the model to answer again, alone, now
that the results are in front of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Sequence
from typing import Any, Literal

from . import events as ev
from ._text import short_repr
from .agents import NO_ANSWER, MultiStepAgent, combined_usage
from .approval import Ask, Deny, ManagedAgentPaused, PendingCall, ToolCallInfo, nested_pending
from .effects import AwaitApproval, CallModel, CallTools, Effect
from .errors import AgentParsingError, AgentToolCallError, AgentToolExecutionError
from .grounding import NumberSources
from .memory import ActionStep, AgentMemory, SystemPromptStep, TaskStep, ToolResult
from .models.base import Model, ToolCall
from .parsing import extract_json_tool_calls, mentions_tool_call
from .prompts import load_prompt, render
from .tool_log import preview

__all__ = ["ToolCallingAgent", "check_tool_call", "FINAL_ANSWER_NOT_ALONE", "ToolCallFormat"]

ToolCallFormat = Literal["auto", "native", "text"]
"""How the model is asked for calls: the provider's native tool calls, JSON written in the text, or "auto"."""

FINAL_ANSWER_NOT_ALONE = (
    "final_answer was not run: it came in the same reply as other calls, before their results. Call final_answer "
    "alone, in a reply of its own, after you have seen the results of your other calls (they are above)."
)


ECHOED_ERROR = (
    "final_answer was not run: its answer is the text of an error message shown to you, not an answer to the "
    "task. Call final_answer with the answer itself, computed from the tool results above."
)


def _echoes_an_error(answer: Any, steps: Sequence[ActionStep]) -> bool:
    """Whether a final answer is (a long part of) an error text an earlier step showed the model.

    A small model copies the refusal it was just shown ("final_answer was not run: ...") into final_answer;
    ending the run with the framework's own message would report it as the task's answer.
    """
    if not isinstance(answer, str) or len(answer.strip()) < 20:
        return False
    text = " ".join(answer.removeprefix("Error:").split())[:60]  # the model re-wraps lines: compare words
    for step in steps:
        for shown in [step.error, step.observations, *(r.output for r in step.tool_results if r.is_error)]:
            if shown and "Error" in shown and text in " ".join(shown.split()):
                return True
    return False


def check_tool_call(
    tools: dict[str, Any], call: ToolCall, calls: Sequence[ToolCall]
) -> tuple[Any, dict[str, Any]]:
    """(tool, validated arguments) for `call`, one of a reply's `calls`.

    Raises:
        AgentToolCallError: the call cannot run as sent; the message tells the model how to send it.
    """
    if call.name == "final_answer" and len(calls) > 1:
        raise AgentToolCallError(FINAL_ANSWER_NOT_ALONE)
    tool = tools.get(call.name)
    placeholder = _placeholder_argument(call.arguments)
    if tool is not None and placeholder is not None:
        raise AgentToolCallError(
            f"not run: {placeholder!r} stands for a result you do not have yet. Call {call.name} in your next "
            "reply, with the value taken from the results."
        )
    if tool is None and _is_placeholder(call.name):
        raise AgentToolCallError(
            f"{call.name!r} is a placeholder from the format help, not a tool, so nothing was run. Put the name "
            f"of one of these tools there: {', '.join(sorted(tools))}."
        )
    if tool is None:
        raise AgentToolCallError(f"Unknown tool {call.name!r}. Available tools: {', '.join(sorted(tools))}.")
    if isinstance(call.arguments, str):
        raise AgentToolCallError(
            f"The arguments for tool {call.name!r} are not a valid JSON object: {call.arguments!r}. "
            "Send arguments as a JSON object."
        )
    return tool, tool.validate_arguments(call.arguments)


class ToolCallingAgent(MultiStepAgent):
    """An agent whose actions are JSON tool calls: native ones, or JSON in text for models without them."""

    prompt_name = "tool_calling_agent"

    def __init__(
        self,
        tools: Sequence[Any] = (),
        model: Model | str | None = None,
        *,
        tool_call_format: ToolCallFormat = "auto",
        calculator: bool = False,
        grounded_calls: bool = False,
        **kwargs: Any,
    ) -> None:
        """Args beyond `MultiStepAgent`'s:

        tool_call_format: "native" sends the tools to the provider and expects native tool calls; "text" lists
            them in the prompt only and reads JSON calls from the reply; "auto" (the default) starts native and
            switches to "text" for good as soon as the model writes its calls as JSON text instead. Servers that put tools into
            the chat template but never return native calls (llama.cpp with most GGUF templates) otherwise leave
            two competing call formats in every prompt, and the tool schemas cost tokens at every step.
        calculator: add the `calculate` tool (`codeloop.tools.CalculatorTool`), which evaluates an arithmetic
            expression: without it, every sum, mean or conversion a task needs is done in the model's head.
        grounded_calls: do not run a tool call with a number the model has not seen in the task or a result
            (`codeloop.grounding`); the model is told which numbers have no source, and a number refused once
            is accepted when sent again (a unit conversion is knowledge, not data). Small models write a whole
            plan of calls at once, every number after the first call invented. Off by default: on the 1.5B
            model it refused the invented plans, and the model then wrote code into `calculate` instead.
        """
        from .tools import FinalAnswerTool

        if tool_call_format not in ("auto", "native", "text"):
            raise ValueError(
                f"tool_call_format={tool_call_format!r} is not one of 'auto', 'native', 'text'; 'auto' detects "
                "whether the model answers with native tool calls and falls back to JSON in text"
            )
        self.tool_call_format: ToolCallFormat = tool_call_format
        self._text_calls = tool_call_format == "text"
        self._tools_called_in_run = 0
        self._tool_names_called: set[str] = set()
        self.grounded_calls = grounded_calls
        self._refused_numbers: set[str] = set()
        super().__init__(tools, model, **kwargs)
        self.tools.setdefault("final_answer", FinalAnswerTool())
        if calculator and "calculate" not in self.tools:
            from .tools import CalculatorTool

            self.tools["calculate"] = CalculatorTool()
        self.memory = AgentMemory(self.system_prompt())

    def _prepare_run(self) -> None:
        super()._prepare_run()
        self._tools_called_in_run = 0
        self._tool_names_called = set()
        self._refused_numbers = set()

    def _called_no_tool(self) -> bool:
        return self._tools_called_in_run == 0

    def _tools_not_called(self) -> list[str]:
        hidden = {"final_answer", "calculate"}  # the calculator is a helper, not a source of the task's data
        return [name for name in self.tools if name not in hidden and name not in self._tool_names_called]

    def _compute_example(self) -> str:
        """The end of the prompt's example: through `calculate` when the agent has it."""
        answer = '{"name": "final_answer", "arguments": {"answer": 750.0}}'
        if "calculate" not in self.tools:
            return f"{answer}\n"
        return (
            '{"name": "calculate", "arguments": {"expression": "3 * 0.25 * 1000"}}\nObservation:\n'
            f"calculate(expression='3 * 0.25 * 1000') -> 750.0\nReply: That is the answer.\n{answer}\n"
        )

    @property
    def text_calls(self) -> bool:
        """Whether calls are read from JSON in the reply's text (native tool calls are not offered)."""
        return self._text_calls

    def _prompt_values(self) -> dict[str, str]:
        values = super()._prompt_values()
        values["compute_rule"] = (
            "- Compute with the `calculate` tool, never in your head: copy the numbers from the results into its "
            "expression.\n"
            if "calculate" in self.tools
            else ""
        )
        values["example"] = ""
        if self._text_calls:
            values["tools"] = "\n".join(_signature(t) for t in self.tools.values())
            values["call_format"] = load_prompt("tool_call_format_text")
            # A worked example of short replies: without one the 1.5B model wrote a 512-token plan (with a
            # JavaScript loop) at every step and repeated its first calls instead of making the next ones.
            values["example"] = render(
                load_prompt("example_tool_calls"), compute_example=self._compute_example()
            )
        else:
            values["tools"] = "\n".join(f"- {t.name}: {t.description}" for t in self.tools.values())
            values["call_format"] = load_prompt("tool_call_format_auto")
        return values

    def _context_extra(self) -> str:
        # The tool schemas travel with every native-call request and count against the context window.
        if self._text_calls:
            return ""
        return json.dumps([t.to_function_spec() for t in self.tools.values()], default=str)

    def _use_text_calls(self) -> None:
        """From now on, ask for calls as JSON in text only: one format in the prompt, no schemas sent."""
        self._text_calls = True
        self.memory.system_prompt = SystemPromptStep(system_prompt=self.system_prompt())

    def _step(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, Any]:
        specs = None if self._text_calls else [t.to_function_spec() for t in self.tools.values()]
        messages = yield from self._model_input(step)
        message = yield CallModel(messages, tools=specs, stream=self.stream_outputs)
        step.model_output_message = message
        step.token_usage = combined_usage(step.token_usage, message.token_usage)
        step.model_output = message.text
        yield ev.ModelOutput(message, step.step_number)
        native = bool(message.tool_calls)
        switch = not native and not self._text_calls and self.tool_call_format == "auto"
        try:
            calls = message.tool_calls if native else extract_json_tool_calls(message.text)
        except AgentParsingError:
            if switch and mentions_tool_call(message.text):
                self._use_text_calls()  # it meant a text call, though a broken one
            raise
        if switch:
            self._use_text_calls()  # the model wrote its calls as text although native ones were offered
        if not native and any(c.name != "final_answer" for c in calls):
            # An answer written beside calls came before their results. A native call must be answered (the
            # refusal below); one written as text is dropped unseen, because a small model copies any refusal
            # it is shown into its next final_answer.
            calls = [c for c in calls if c.name != "final_answer"]
        if native:
            step.tool_calls = list(calls)
        results: dict[str, ToolResult] = {}
        runnable: list[tuple[ToolCall, Any, dict[str, Any]]] = []
        sources = self._number_sources()
        for call in calls:
            yield ev.ToolCallStarted(call, step.step_number)
            try:
                runnable.append((call, *check_tool_call(self.tools, call, calls)))
                if sources is not None and call.name != "final_answer":
                    _check_numbers(call, sources)
            except AgentToolCallError as exc:
                runnable = [r for r in runnable if r[0] is not call]
                results[call.id] = ToolResult(call.id, call.name, f"Error: {exc}", is_error=True)
        ready, waiting = self._screen(runnable, step.step_number, results)
        # Calls that need no decision run now, exactly once; those awaiting one run (or not) after it.
        nested: dict[str, tuple[ToolCall, Any, ToolCallInfo, ManagedAgentPaused]] = {}
        answer = yield from self._run_calls(ready, results, nested)
        while waiting or nested:
            self._show_results(step, calls, results, native)
            pending = [
                PendingCall(c.id, c.name, dict(info.arguments), reason) for c, _, info, reason in waiting
            ]
            for call_id, (_call, _tool, _info, paused) in nested.items():  # a managed agent's own calls
                pending += [nested_pending(f"{call_id}/", paused.agent_name, p) for p in paused.pending]
            decisions = yield AwaitApproval(pending, step)
            approved = [(c, t, info) for c, t, info, _ in waiting if decisions.get(c.id) is True]
            for call, _tool, _info, _reason in waiting:
                verdict = decisions.get(call.id)
                if isinstance(verdict, str):
                    results[call.id] = ToolResult(call.id, call.name, f"denied: {verdict}", is_error=True)
            waiting = [w for w in waiting if w[0].id not in decisions]
            approved += self._continuations(nested, decisions)
            answer = yield from self._run_calls(approved, results, nested)
        observations = self._show_results(step, calls, results, native)
        if calls and self._repeats_previous_step(step, calls):
            step.observations = observations = f"{observations}\n{load_prompt('repeated_calls').strip()}"
        if answer is not NO_ANSWER:
            step.action_output = answer
        yield ev.Observation(observations, step.step_number)
        return answer

    def _number_sources(self) -> NumberSources | None:
        """The numbers the model has been shown in this run (task, observations), if calls are checked."""
        if not self.grounded_calls:
            return None
        sources = NumberSources()
        for memory_step in self.memory.steps:
            if isinstance(memory_step, TaskStep):
                sources.add(memory_step.task)
            elif isinstance(memory_step, ActionStep):
                sources.add(memory_step.observations or "")
        sources.refused = self._refused_numbers  # shared: refused once, accepted when sent again
        return sources

    def _repeats_previous_step(self, step: ActionStep, calls: Sequence[ToolCall]) -> bool:
        """Whether `step` made the previous step's calls again and got the same results.

        The 1.5B model re-sent the same failing call four times running, each time with the same reply to the
        same error; the note tells a model that can change course that it must.
        """
        previous = next((s for s in reversed(self.memory.steps) if isinstance(s, ActionStep)), None)
        if previous is None or previous is step or previous.observations is None:
            return False
        note = "\n" + load_prompt("repeated_calls").strip()
        same_calls = [(c.name, c.arguments) for c in _calls_of(previous)] == [
            (c.name, c.arguments) for c in calls
        ]
        return same_calls and previous.observations.removesuffix(note) == step.observations

    def _screen(
        self,
        runnable: list[tuple[ToolCall, Any, dict[str, Any]]],
        step_number: int,
        results: dict[str, ToolResult],
    ) -> tuple[list[tuple[ToolCall, Any, ToolCallInfo]], list[tuple[ToolCall, Any, ToolCallInfo, str]]]:
        """Hooks and approval for each call: (calls to run now, calls awaiting a decision with the reason)."""
        ready: list[tuple[ToolCall, Any, ToolCallInfo]] = []
        waiting: list[tuple[ToolCall, Any, ToolCallInfo, str]] = []
        for call, tool, args in runnable:
            info = ToolCallInfo(call.id, call.name, args, tool, self, self._run_id, step_number)
            if call.name == "final_answer":  # how the run ends, not an action on the world
                ready.append((call, tool, info))
                continue
            decision = self.tool_gate.screen(info, use_decided=False)
            if isinstance(decision, Deny):
                results[call.id] = ToolResult(call.id, call.name, f"denied: {decision.reason}", is_error=True)
            elif isinstance(decision, Ask):
                waiting.append((call, tool, info, decision.reason))
            else:
                ready.append((call, tool, info))
        return ready, waiting

    @staticmethod
    def _continuations(
        nested: dict[str, tuple[ToolCall, Any, ToolCallInfo, ManagedAgentPaused]], decisions: dict[str, Any]
    ) -> list[tuple[ToolCall, Any, ToolCallInfo]]:
        """Calls that continue managed agents' paused runs with the decisions given for their calls (taken out of
        `nested`); a managed agent given none stays paused."""
        continuing: list[tuple[ToolCall, Any, ToolCallInfo]] = []
        for call_id, (call, tool, info, paused) in list(nested.items()):
            prefix = f"{call_id}/"
            mine = {
                p.call_id: decisions[prefix + p.call_id]
                for p in paused.pending
                if prefix + p.call_id in decisions
            }
            if mine:
                del nested[call_id]
                continuing.append((call, _ContinueManagedRun(tool, paused.run_id, mine), info))
        return continuing

    def _run_calls(
        self,
        items: list[tuple[ToolCall, Any, ToolCallInfo]],
        results: dict[str, ToolResult],
        nested: dict[str, tuple[ToolCall, Any, ToolCallInfo, ManagedAgentPaused]],
    ) -> Generator[ev.Event | Effect, Any, Any]:
        """Run `items` together (one effect), apply the after hooks, and file each outcome in `results` (or, for a
        managed agent whose run paused for approval, in `nested`)."""
        if not items:
            return NO_ANSWER
        outputs = yield CallTools([(call, tool, info.arguments) for call, tool, info in items])
        answer: Any = NO_ANSWER
        for (call, tool, info), output in zip(items, outputs, strict=True):
            if isinstance(output, ManagedAgentPaused):
                base_tool = tool.tool if isinstance(tool, _ContinueManagedRun) else tool
                nested[call.id] = (call, base_tool, info, output)
            elif isinstance(output, BaseException):
                error = AgentToolExecutionError(
                    f"Error when running tool {call.name!r} with arguments {info.arguments!r}: "
                    f"{type(output).__name__}: {output}\nCheck the arguments or try another approach."
                )
                results[call.id] = ToolResult(call.id, call.name, f"Error: {error}", is_error=True)
            elif call.name == "final_answer" and _echoes_an_error(output, self.memory.action_steps):
                recap = _results_so_far(self.memory.action_steps)
                results[call.id] = ToolResult(
                    call.id, call.name, f"Error: {ECHOED_ERROR}{recap}", is_error=True
                )
            elif call.name == "final_answer":
                answer = output
                results[call.id] = ToolResult(call.id, call.name, f"Final answer: {short_repr(output)}")
            else:
                self._tools_called_in_run += 1
                self._tool_names_called.add(call.name)
                output = self.tool_gate.finish(info, output)
                results[call.id] = ToolResult(call.id, call.name, _as_observation(output))
        return answer

    @staticmethod
    def _show_results(
        step: ActionStep, calls: Sequence[ToolCall], results: dict[str, ToolResult], native: bool
    ) -> str:
        """Put the results so far on the step, in the model's order (a paused step shows what already ran)."""
        ordered = [results[c.id] for c in calls if c.id in results]
        # each result beside its call's arguments: three results of one tool are otherwise anonymous numbers
        shown = [_result_line(c, results[c.id]) for c in calls if c.id in results]
        step.observations = observations = "\n".join(shown)
        if native:
            step.tool_results = ordered
        return observations

    def _forced_final_answer(self, task: str) -> Generator[ev.Event | Effect, Any, Any]:
        """As the base class, but a reply that is a final_answer call (native or JSON text) gives its value."""
        text, usage = yield from super()._forced_final_answer(task)
        try:
            calls = extract_json_tool_calls(text) if isinstance(text, str) else []
        except AgentParsingError:
            calls = []
        if len(calls) == 1 and calls[0].name == "final_answer" and isinstance(calls[0].arguments, dict):
            if "answer" in calls[0].arguments:
                text = calls[0].arguments["answer"]
        if _echoes_an_error(text, self.memory.action_steps):
            return None, usage  # no answer beats the framework's own error message reported as one
        return text, usage


# Names a model copies from format help or schema examples instead of naming a real tool.
_PLACEHOLDER_NAMES = frozenset(
    {"tool_name", "tool", "name", "function", "function_name", "your_tool", "tool name"}
)


_PLACEHOLDER_VALUE = re.compile(r"^\s*(\{\{.*\}\}|<[^<>]+>|\$\{?\w+\}?)\s*$", re.DOTALL)


class _ContinueManagedRun:
    """Stands in for a managed agent's tool in a CallTools effect: continues its paused run with decisions.

    Journaled like the call it continues (same tool name and arguments, its own entry), so a replay answers it
    from the record once it finished; if the managed agent pauses again, the manager pauses again.
    """

    def __init__(self, tool: Any, run_id: str, decisions: dict[str, Any]) -> None:
        self.tool = tool
        self.name = getattr(tool, "name", "agent")
        self._run_id = run_id
        self._decisions = decisions

    def __call__(self, **_arguments: Any) -> Any:
        return self.tool.resume_run(self._run_id, self._decisions)


def _calls_of(step: ActionStep) -> list[ToolCall]:
    """The calls a step made: native ones, else the ones written in its text (none if it had no valid ones)."""
    if step.tool_calls:
        return list(step.tool_calls)
    try:
        return extract_json_tool_calls(step.model_output or "")
    except AgentParsingError:
        return []


def _check_numbers(call: ToolCall, sources: NumberSources) -> None:
    """Refuse `call` if its arguments hold numbers the model has not been shown (see `codeloop.grounding`)."""
    missing = sources.ungrounded(call.arguments)
    if missing:
        listed = ", ".join(missing[:6])
        raise AgentToolCallError(
            f"not run: {listed} {'appears' if len(missing) == 1 else 'appear'} in no tool result yet. Get the "
            "numbers from the tools first and use the exact values they return (a known constant, such as a "
            "unit conversion, may be sent again)."
        )


def _placeholder_argument(arguments: Any) -> str | None:
    """A string argument that stands for another call's result (`{{result_of_x}}`, `<price>`, `$total`), if any.

    Small models write a whole plan's calls in one reply and fill the later ones' arguments with such
    placeholders; the tool cannot run on them, and a schema error about "a valid number" does not say why.
    """
    if not isinstance(arguments, dict):
        return None
    for value in arguments.values():
        if isinstance(value, str) and _PLACEHOLDER_VALUE.match(value):
            return value
    return None


def _is_placeholder(name: str) -> bool:
    return name.strip().lower() in _PLACEHOLDER_NAMES or name.strip().startswith("<")


def _signature(tool: Any) -> str:
    """`- name(arg: type, ...): description`, with each argument's own description, for calls written as text."""
    parameters = tool.to_function_spec().get("parameters", {})
    properties: dict[str, Any] = parameters.get("properties", {})
    args = ", ".join(f"{name}: {spec.get('type', 'any')}" for name, spec in properties.items())
    lines = [f"- {tool.name}({args}): {tool.description}"]
    lines += [
        f"    {name}: {spec['description']}" for name, spec in properties.items() if spec.get("description")
    ]
    return "\n".join(lines)


def _result_line(call: ToolCall, result: ToolResult) -> str:
    """`name(arg=value, ...) -> output`: the form a CodeAgent's tool log uses too."""
    arguments = call.arguments if isinstance(call.arguments, dict) else {}
    shown = ", ".join(f"{k}={preview(v, 60)}" for k, v in arguments.items())
    return f"{call.name}({shown}) -> {result.output}"


def _results_so_far(steps: Sequence[ActionStep]) -> str:
    """The successful tool results of earlier steps, to put in front of a model that answered with an error."""
    lines = [
        line
        for step in steps
        for line in (step.observations or "").splitlines()
        if " -> " in line and "Error" not in line and not line.startswith("final_answer(")
    ]
    return "\nThe results you have:\n" + "\n".join(dict.fromkeys(lines)) if lines else ""


def _as_observation(output: Any) -> str:
    return "(no output)" if output is None else short_repr(output, 20_000)
