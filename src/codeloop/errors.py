"""The exceptions codeloop raises.

Two families matter to the loop: errors the model can fix (bad code, a failing tool, bad arguments) are
`AgentError`s that become an observation and the run goes on; errors it cannot fix (the model API stays
unreachable) propagate and end the run, with the steps so far kept on the agent and in `RunResult`.
"""

from __future__ import annotations

__all__ = [
    "CodeloopError",
    "AgentError",
    "AgentParsingError",
    "AgentToolCallError",
    "AgentToolExecutionError",
    "AgentExecutionError",
    "AgentGenerationError",
    "ModelConfigurationError",
    "AgentInterrupted",
    "ExecutionError",
    "ToolDefinitionError",
    "SandboxUnavailableError",
    "MissingExtraError",
    "MissingAPIKeyError",
]


class CodeloopError(Exception):
    """Base class of every error codeloop raises on purpose."""


class AgentError(CodeloopError):
    """An error inside a step that the model can see and fix; its message becomes the observation."""


class AgentParsingError(AgentError):
    """The model's reply held no usable code block or tool call."""


class AgentToolCallError(AgentError):
    """A tool call named an unknown tool or passed arguments that do not fit its schema."""


class AgentToolExecutionError(AgentError):
    """A tool raised while running."""


class AgentExecutionError(AgentError):
    """The code action failed: syntax error, exception, forbidden import, timeout."""


class AgentGenerationError(CodeloopError):
    """The model could not be reached or answered with an error after all retries. Ends the run.

    `provider`, `status` (HTTP status, `None` for connection errors) and `provider_message` (the provider's
    own words, verbatim) are set when a model adapter raises it. `partial_output` holds the text that arrived
    before a streamed reply was cut (the agent keeps it on the step), `None` when nothing arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        provider_message: str | None = None,
        partial_output: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.provider_message = provider_message
        self.partial_output = partial_output


class ModelConfigurationError(CodeloopError, ValueError):
    """A model is set up wrongly: a missing API key, an unknown provider, or a feature the provider lacks."""


class AgentInterrupted(CodeloopError):
    """The run was stopped by `agent.interrupt()` or Ctrl-C; the steps so far are kept."""


class ExecutionError(CodeloopError):
    """Raised by an `Executor` when code fails; the message is exactly what the model will see.

    `logs` holds whatever the code printed before it failed, so nothing it printed is lost.
    """

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.logs = logs


class ToolDefinitionError(CodeloopError, ValueError):
    """A tool is defined wrongly (missing docstring, argument description or type hint, bad name)."""


class SandboxUnavailableError(CodeloopError, RuntimeError):
    """An isolated executor cannot run here: bubblewrap or user namespaces are missing (and isolation was
    required), or its worker process could not be started. The message says what is missing and how to fix it."""


class MissingExtraError(CodeloopError, ImportError):
    """An optional dependency (a codeloop extra) is not installed; the message gives the `pip install` line.

    Raised when the object that needs it is created, so no run starts (and no model call is paid) without it.
    """


class MissingAPIKeyError(ModelConfigurationError):
    """A model needs an API key and none was given or found; `provider` and `env_var` say which and where."""

    def __init__(self, message: str, *, provider: str, env_var: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.env_var = env_var
