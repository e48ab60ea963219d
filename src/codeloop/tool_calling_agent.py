"""`ToolCallingAgent`: the agent whose actions are JSON tool calls, beside the code-writing `CodeAgent`.

It takes the calls of a reply (native `tool_calls`, or JSON written in the text for models without them), checks
each before any runs, runs the valid ones together and shows the model every result. A call names a known tool
and carries a JSON object of valid arguments; `final_answer` comes alone. A model that sends `final_answer`
beside other calls has written its answer before it saw their results (small models do this in most replies),
so that answer is refused: the other calls run, and the refusal tells the model to answer again, alone, now
that the results are in front of it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from . import events as ev
from ._text import short_repr
from .agents import NO_ANSWER, MultiStepAgent
from .effects import CallModel, CallTools, Effect
from .errors import AgentToolCallError, AgentToolExecutionError
from .memory import ActionStep, AgentMemory, ToolResult
from .models.base import Model, ToolCall
from .parsing import extract_json_tool_calls

__all__ = ["ToolCallingAgent", "check_tool_call", "FINAL_ANSWER_NOT_ALONE"]

FINAL_ANSWER_NOT_ALONE = (
    "final_answer was not run: it came in the same reply as other calls, before their results. Call final_answer "
    "alone, in a reply of its own, after you have seen the results of your other calls (they are above)."
)


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

    def __init__(self, tools: Sequence[Any] = (), model: Model | str | None = None, **kwargs: Any) -> None:
        from .tools import FinalAnswerTool

        super().__init__(tools, model, **kwargs)
        self.tools.setdefault("final_answer", FinalAnswerTool())
        self.memory = AgentMemory(self.system_prompt())

    def _prompt_values(self) -> dict[str, str]:
        values = super()._prompt_values()
        values["tools"] = "\n".join(f"- {t.name}: {t.description}" for t in self.tools.values())
        return values

    def _step(self, step: ActionStep) -> Generator[ev.Event | Effect, Any, Any]:
        specs = [t.to_function_spec() for t in self.tools.values()]
        message = yield CallModel(self.memory.to_messages(), tools=specs, stream=self.stream_outputs)
        step.model_output_message, step.token_usage = message, message.token_usage
        step.model_output = message.text
        yield ev.ModelOutput(message, step.step_number)
        native = bool(message.tool_calls)
        calls = message.tool_calls if native else extract_json_tool_calls(message.text)
        if native:
            step.tool_calls = list(calls)
        results: dict[str, ToolResult] = {}
        runnable: list[tuple[ToolCall, Any, dict[str, Any]]] = []
        for call in calls:
            yield ev.ToolCallStarted(call, step.step_number)
            try:
                runnable.append((call, *check_tool_call(self.tools, call, calls)))
            except AgentToolCallError as exc:
                results[call.id] = ToolResult(call.id, call.name, f"Error: {exc}", is_error=True)
        outputs = (yield CallTools(runnable)) if runnable else []
        answer: Any = NO_ANSWER
        for (call, _tool, args), output in zip(runnable, outputs, strict=True):
            if isinstance(output, BaseException):
                error = AgentToolExecutionError(
                    f"Error when running tool {call.name!r} with arguments {args!r}: "
                    f"{type(output).__name__}: {output}\nCheck the arguments or try another approach."
                )
                results[call.id] = ToolResult(call.id, call.name, f"Error: {error}", is_error=True)
            elif call.name == "final_answer":
                answer = output
                results[call.id] = ToolResult(call.id, call.name, f"Final answer: {short_repr(output)}")
            else:
                results[call.id] = ToolResult(call.id, call.name, _as_observation(output))
        ordered = [results[c.id] for c in calls]
        step.observations = "\n".join(f"[{r.name}] {r.output}" for r in ordered)
        if native:
            step.tool_results = ordered
        if answer is not NO_ANSWER:
            step.action_output = answer
        yield ev.Observation(step.observations, step.step_number)
        return answer


# Names a model copies from format help or schema examples instead of naming a real tool.
_PLACEHOLDER_NAMES = frozenset(
    {"tool_name", "tool", "name", "function", "function_name", "your_tool", "tool name"}
)


def _is_placeholder(name: str) -> bool:
    return name.strip().lower() in _PLACEHOLDER_NAMES or name.strip().startswith("<")


def _as_observation(output: Any) -> str:
    return "(no output)" if output is None else short_repr(output, 20_000)
