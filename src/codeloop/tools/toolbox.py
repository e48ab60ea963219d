"""The default toolbox: built-in tools by name, for `add_base_tools=True` and the CLI's `--tools`.

web_search          DuckDuckGo by default; Brave / Serper / Exa when their API key is set
visit_webpage       a page as Markdown, size-capped and time-limited
wikipedia_search    the best-matching Wikipedia article
python_interpreter  runs code in an executor (the sandbox by default); for ToolCallingAgent
user_input          asks the person at the terminal
final_answer        ends the run (ToolCallingAgent)
speech_to_text      transcribes audio with a transformers pipeline (extra: codeloop[speech])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .base import Tool

__all__ = [
    "BUILTIN_TOOLS",
    "PythonInterpreterTool",
    "UserInputTool",
    "SpeechToTextTool",
    "load_builtin_tool",
    "load_builtin_tools",
    "base_tools",
]

BUILTIN_TOOLS: dict[str, str] = {
    "web_search": "codeloop.tools.web:WebSearchTool",
    "visit_webpage": "codeloop.tools.web:VisitWebpageTool",
    "wikipedia_search": "codeloop.tools.web:WikipediaSearchTool",
    "python_interpreter": "codeloop.tools.toolbox:PythonInterpreterTool",
    "user_input": "codeloop.tools.toolbox:UserInputTool",
    "final_answer": "codeloop.tools.final_answer:FinalAnswerTool",
    "speech_to_text": "codeloop.tools.toolbox:SpeechToTextTool",
}
"""Tool name -> `module:class` of its implementation (imported on demand)."""


class PythonInterpreterTool(Tool):
    """Run Python code in an executor: the sandbox by default. Variables persist from call to call.

    Args (constructor):
        authorized_imports: modules the code may import beyond the safe default set ("pkg.*", "*" accepted).
        executor: "sandbox", "local", or an executor instance.
        executor_kwargs: passed to `codeloop.executors.create_executor`.
    """

    name = "python_interpreter"
    inputs = {"code": {"type": "string", "description": "The Python code to run."}}
    output_type = "string"

    def __init__(
        self,
        authorized_imports: Sequence[str] = (),
        *,
        executor: Any = "sandbox",
        executor_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.authorized_imports = list(authorized_imports)
        self.executor_spec = executor
        self.executor_kwargs = dict(executor_kwargs or {})
        self._executor: Any = None
        extra = (
            f" Besides the standard safe modules it may import: {', '.join(self.authorized_imports)}."
            if (self.authorized_imports)
            else ""
        )
        self.description = (
            "Run Python code and get back what it printed and the value of its last expression. "
            "Variables and functions persist between calls." + extra
        )

    @property
    def executor(self) -> Any:
        """The executor, created on first use."""
        if self._executor is None:
            from ..executors import create_executor

            kwargs = dict(self.executor_kwargs)
            if isinstance(self.executor_spec, str):
                kwargs.setdefault("additional_authorized_imports", self.authorized_imports)
            self._executor = create_executor(self.executor_spec, **kwargs)
        return self._executor

    def forward(self, code: str) -> str:
        result = self.executor.run(code)  # ExecutionError carries the message the model should see
        parts = []
        if result.logs:
            parts.append(f"Stdout:\n{result.logs.rstrip()}")
        if result.output is not None:
            parts.append(f"Output: {result.output!r}")
        return "\n".join(parts) or "(the code printed nothing and its last line has no value)"

    def close(self) -> None:
        """Release the executor (its sandbox process, if any)."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None


class UserInputTool(Tool):
    """Ask the user a question and wait for the answer (on the terminal unless `ask` is given)."""

    name = "user_input"
    description = "Ask the user a question when you need information only they have; returns their answer."
    inputs = {"question": {"type": "string", "description": "The question for the user."}}
    output_type = "string"

    def __init__(self, ask: Callable[[str], str] | None = None) -> None:
        self.ask = ask

    def forward(self, question: str) -> str:
        ask = self.ask or input
        try:
            return ask(f"{question.rstrip()} => Type your answer here: ")
        except EOFError:
            raise RuntimeError(
                "No user can answer: standard input is closed. Decide without asking, or state the question "
                "in your final answer."
            ) from None


class SpeechToTextTool(Tool):
    """Transcribe speech with a transformers ASR pipeline (Whisper by default); loaded on first use.

    Args (constructor):
        model: the transformers model id or local path.
        device: passed to the pipeline ("cpu", "cuda", an index...).
    """

    name = "speech_to_text"
    description = "Transcribe an audio file (path or URL) to text."
    inputs = {"audio": {"type": "string", "description": "Path or URL of the audio file to transcribe."}}
    output_type = "string"

    def __init__(self, model: str = "openai/whisper-small", *, device: Any = None) -> None:
        self.model_id = model
        self.device = device
        self._pipeline: Any = None

    def setup(self) -> None:
        try:
            from transformers import pipeline
        except ImportError as exc:
            raise ImportError(
                "speech_to_text needs transformers (and a backend such as torch): pip install 'codeloop[speech]'"
            ) from exc
        self._pipeline = pipeline("automatic-speech-recognition", model=self.model_id, device=self.device)

    def forward(self, audio: str) -> str:
        return str(self._pipeline(audio)["text"]).strip()


def _tool_class(name: str) -> type[Tool]:
    if name not in BUILTIN_TOOLS:
        raise ValueError(f"unknown built-in tool {name!r}; known: {', '.join(BUILTIN_TOOLS)}")
    module_name, class_name = BUILTIN_TOOLS[name].split(":")
    cls: type[Tool] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_builtin_tool(name: str, **kwargs: Any) -> Tool:
    """A built-in tool by name, e.g. `load_builtin_tool("web_search", engine="brave")`."""
    return _tool_class(name)(**kwargs)


def load_builtin_tools(names: str | Sequence[str]) -> list[Tool]:
    """Built-in tools from names or a comma-separated string (the CLI's `--tools web_search,visit_webpage`)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILTIN_TOOLS]
    if unknown:
        raise ValueError(
            f"unknown built-in tool{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(BUILTIN_TOOLS)}"
        )
    return [load_builtin_tool(n) for n in names]


def base_tools(agent_kind: str = "code") -> list[Tool]:
    """What `add_base_tools=True` adds: web search, page reading and Wikipedia, plus `python_interpreter`
    for a tool-calling agent (a CodeAgent already runs code). `final_answer` is the agent's own business."""
    names = ["web_search", "visit_webpage", "wikipedia_search"]
    if agent_kind != "code":
        names.append("python_interpreter")
    return load_builtin_tools(names)
