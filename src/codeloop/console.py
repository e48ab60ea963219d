"""Rich console rendering of agent events. A listener: the loop knows nothing about it.

An agent attaches a `ConsoleRenderer` when its `verbosity_level` is above 0 and calls it like any other
listener. Every text that comes from a user, a model or agent code is handed to rich as `Text`, never as markup,
so `pip install "codeloop[openai]"` prints as written; and the output stream replaces lone surrogates, so
printing `'\\udcff'` in agent code cannot break the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import events as ev
from ._text import EncodableStream
from .memory import ActionStep, FinalAnswerStep, MemoryStep, PlanningStep, TaskStep
from .models.base import TokenUsage

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

__all__ = ["ConsoleRenderer"]


class ConsoleRenderer:
    """Renders events as they come: the task, a rule per step, code and logs in panels, tokens per step.

    `level` 0 prints nothing, 1 the usual panels, 2 also the model's full replies.
    """

    def __init__(self, level: int = 1, console: Console | None = None) -> None:
        self.level = level
        self._console = console
        self._live: Live | None = None
        self._streamed = ""
        self._progress = _Progress()

    @property
    def console(self) -> Console:
        """The rich console written to; by default one on stdout, made when the first event is shown."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, file=EncodableStream())  # type: ignore[arg-type]
        return self._console

    def __call__(self, event: ev.Event) -> None:
        if self.level <= 0:
            return
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    # --- one method per event type ----------------------------------------------------------------------------

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        from rich.panel import Panel
        from rich.text import Text

        self._progress = _Progress(e.max_steps, e.model_id)
        title = Text(f"New run - {e.agent}" if e.agent else "New run")
        subtitle = Text(e.model_id) if e.model_id else None
        self.console.print(Panel(Text(e.task), title=title, subtitle=subtitle, border_style="cyan"))

    def _on_StepStarted(self, e: ev.StepStarted) -> None:
        self._progress.retries = 0
        of_max = f" of {self._progress.max_steps}" if self._progress.max_steps else ""
        self.console.rule(f"[bold]Step {e.step_number}{of_max}", style="cyan")

    def _on_ModelTextDelta(self, e: ev.ModelTextDelta) -> None:
        from rich.live import Live
        from rich.text import Text

        self._streamed += e.text
        if self._live is None:
            self._live = Live(
                Text(self._streamed), console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()
        else:
            self._live.update(Text(self._streamed))

    def _on_ModelOutput(self, e: ev.ModelOutput) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._streamed = ""
        if self.level >= 2 and e.message.text:
            from rich.markdown import Markdown

            self.console.print(Markdown(e.message.text))
        if e.message.reasoning and self.level >= 2:
            from rich.text import Text

            self.console.print(Text(e.message.reasoning, style="dim"))

    def _on_CodeAction(self, e: ev.CodeAction) -> None:
        from rich.panel import Panel
        from rich.syntax import Syntax

        self.console.print(Panel(Syntax(e.code, "python", theme="monokai", word_wrap=True), title="Code"))

    def _on_ToolCallStarted(self, e: ev.ToolCallStarted) -> None:
        from rich.panel import Panel
        from rich.text import Text

        self.console.print(
            Panel(Text(f"{e.call.name}({e.call.arguments})"), title="Tool call", border_style="blue")
        )

    def _on_ExecutionLog(self, e: ev.ExecutionLog) -> None:
        self.console.print(e.text, end="", markup=False, highlight=False)

    def _on_Observation(self, e: ev.Observation) -> None:
        from rich.text import Text

        self.console.print(Text("Observation:", style="bold"))
        self.console.print(Text(e.text))

    def _on_PlanCreated(self, e: ev.PlanCreated) -> None:
        from rich.markdown import Markdown
        from rich.panel import Panel

        self.console.print(Panel(Markdown(e.plan.plan), title="Plan", border_style="magenta"))

    def _on_ToolProgress(self, e: ev.ToolProgress) -> None:
        from rich.text import Text

        self.console.print(Text(f"progress {e.describe()}", style="dim"))

    def _on_ModelRetry(self, e: ev.ModelRetry) -> None:
        from rich.text import Text

        self._progress.retries += 1
        self.console.print(Text(e.describe(), style="yellow"))

    def _on_StepError(self, e: ev.StepError) -> None:
        from rich.text import Text

        self.console.print(Text(f"{type(e.error).__name__}: {e.error}", style="bold red"))

    def _on_StepFinished(self, e: ev.StepFinished) -> None:
        from rich.text import Text

        self._progress.add(e.step)
        self.console.print(Text(self._progress.footer(e.step), style="dim"))

    def _on_FinalAnswer(self, e: ev.FinalAnswer) -> None:
        from rich.text import Text

        self.console.print(Text(f"Final answer: {e.output}", style="bold green"))

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        from rich.text import Text

        r = e.result
        parts = [f"state: {r.state}", f"{len([s for s in r.steps if isinstance(s, ActionStep)])} steps"]
        if r.timing.duration is not None:
            parts.append(f"{r.timing.duration:.2f}s")
        parts.append(f"tokens in {r.token_usage.input_tokens:,} / out {r.token_usage.output_tokens:,}")
        if r.cost_usd is not None:
            parts.append(f"cost ${r.cost_usd:.4f}")
        if r.error and r.state != "success":
            parts.append(r.error)
        self.console.print(Text(" | ".join(parts), style="dim"))

    # --- replay ----------------------------------------------------------------------------------------------

    def replay(self, steps: Iterable[MemoryStep], agent_name: str = "") -> None:
        """Print memory steps (e.g. `agent.memory.steps`) as if they were happening now."""
        for step in steps:
            for event in _events_of(step):
                event.agent = agent_name
                self(event)


class _Progress:
    """Where a run stands, for the step footers: steps out of the maximum, tokens and cost so far, retries."""

    def __init__(self, max_steps: int | None = None, model_id: str = "") -> None:
        self.max_steps = max_steps
        self.model_id = model_id
        self.retries = 0
        """Model requests retried during the current step."""
        self.usage: TokenUsage = TokenUsage()

    def add(self, step: ActionStep) -> None:
        self.usage = self.usage + step.token_usage

    def footer(self, step: ActionStep) -> str:
        """`Step 3/20 | 1.20s | tokens in 1,234 / out 56 | run: 5,678 tokens, $0.0123 | 1 retry`."""
        number = f"Step {step.step_number}" + (f"/{self.max_steps}" if self.max_steps else "")
        parts = [number]
        if step.timing.duration is not None:
            parts.append(f"{step.timing.duration:.2f}s")
        if step.token_usage is not None:
            parts.append(
                f"tokens in {step.token_usage.input_tokens:,} / out {step.token_usage.output_tokens:,}"
            )
        so_far = f"run: {self.usage.total_tokens:,} tokens"
        cost = _cost(self.model_id, self.usage)
        if cost is not None:
            so_far += f", ${cost:.4f}"
        parts.append(so_far)
        if self.retries:
            parts.append(f"{self.retries} model retr{'y' if self.retries == 1 else 'ies'}")
        return " | ".join(parts)


def _cost(model_id: str, usage: TokenUsage) -> float | None:
    if not model_id or not usage.total_tokens:
        return None
    from .models.pricing import estimate_cost

    return estimate_cost(model_id, usage)


def _events_of(step: Any) -> list[ev.Event]:
    from .models.base import ChatMessage

    if isinstance(step, TaskStep):
        return [ev.RunStarted(step.task)]
    if isinstance(step, PlanningStep):
        return [ev.PlanCreated(step)]
    if isinstance(step, FinalAnswerStep):
        return [ev.FinalAnswer(step.output)]
    if not isinstance(step, ActionStep):
        return []
    out: list[ev.Event] = [ev.StepStarted(step.step_number)]
    out.append(ev.ModelOutput(step.model_output_message or ChatMessage("assistant", ""), step.step_number))
    if step.code_action:
        out.append(ev.CodeAction(step.code_action, step.step_number))
    out.extend(ev.ToolCallStarted(c, step.step_number) for c in step.tool_calls)
    if step.observations:
        out.append(ev.Observation(step.observations, step.step_number))
    if step.error:
        out.append(ev.StepError(RuntimeError(step.error), step.step_number))
    out.append(ev.StepFinished(step))
    return out
