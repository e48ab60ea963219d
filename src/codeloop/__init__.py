"""codeloop: LLM agents that think in Python.

The model writes a Python snippet, the snippet runs, what it prints comes back as the observation, variables
persist to the next step, and `final_answer(...)` ends the run:

    from codeloop import CodeAgent
    agent = CodeAgent(tools=[], model="openai:gpt-4o")
    agent.run("How many seconds would it take for a leopard at full speed to run through Pont des Arts?")

Every public name is imported lazily, so `import codeloop` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # agents and results
    "MultiStepAgent": "agents",
    "CodeAgent": "code_agent",
    "ToolCallingAgent": "tool_calling_agent",
    "RunResult": "memory",
    "AgentMemory": "memory",
    "ActionStep": "memory",
    "PlanningStep": "memory",
    "TaskStep": "memory",
    "FinalAnswerStep": "memory",
    # tools
    "Tool": "tools",
    "tool": "tools",
    "FinalAnswerTool": "tools",
    "load_tool": "tools",
    "MCPClient": "tools",
    "ToolCollection": "tools",
    "DuckDuckGoSearchTool": "tools",
    "WebSearchTool": "tools",
    "VisitWebpageTool": "tools",
    "WikipediaSearchTool": "tools",
    "PythonInterpreterTool": "tools",
    "UserInputTool": "tools",
    # models
    "model": "models",
    "Model": "models.base",
    "ChatMessage": "models.base",
    "ToolCall": "models.base",
    "TokenUsage": "models.base",
    "OpenAIModel": "models",
    "AzureOpenAIModel": "models",
    "AnthropicModel": "models",
    "InferenceClientModel": "models",
    "HfApiModel": "models",
    "LiteLLMModel": "models",
    "TransformersModel": "models",
    "BedrockModel": "models",
    "FallbackModel": "models",
    "OllamaModel": "models",
    "estimate_cost": "models",
    "ModelConfigurationError": "errors",
    # executors
    "Executor": "executors.base",
    "ExecutionResult": "executors.base",
    "LocalExecutor": "executors",
    # errors
    "CodeloopError": "errors",
    "AgentError": "errors",
    "AgentParsingError": "errors",
    "AgentExecutionError": "errors",
    "AgentToolCallError": "errors",
    "AgentToolExecutionError": "errors",
    "AgentGenerationError": "errors",
    "AgentInterrupted": "errors",
    "ExecutionError": "errors",
    "ToolDefinitionError": "errors",
}

__all__ = [
    "ActionStep",
    "AgentError",
    "AgentExecutionError",
    "AgentGenerationError",
    "AgentInterrupted",
    "AgentMemory",
    "AgentParsingError",
    "AgentToolCallError",
    "AgentToolExecutionError",
    "AnthropicModel",
    "AzureOpenAIModel",
    "BedrockModel",
    "ChatMessage",
    "CodeAgent",
    "CodeloopError",
    "DuckDuckGoSearchTool",
    "ExecutionError",
    "ExecutionResult",
    "Executor",
    "FallbackModel",
    "FinalAnswerStep",
    "FinalAnswerTool",
    "HfApiModel",
    "InferenceClientModel",
    "LiteLLMModel",
    "LocalExecutor",
    "MCPClient",
    "Model",
    "ModelConfigurationError",
    "MultiStepAgent",
    "OllamaModel",
    "OpenAIModel",
    "PlanningStep",
    "PythonInterpreterTool",
    "RunResult",
    "TaskStep",
    "TokenUsage",
    "Tool",
    "ToolCall",
    "ToolCallingAgent",
    "ToolCollection",
    "ToolDefinitionError",
    "TransformersModel",
    "UserInputTool",
    "VisitWebpageTool",
    "WebSearchTool",
    "WikipediaSearchTool",
    "estimate_cost",
    "load_tool",
    "model",
    "tool",
    "events",
    "__version__",
]

if TYPE_CHECKING:
    from . import events
    from .agents import MultiStepAgent
    from .code_agent import CodeAgent
    from .errors import (
        AgentError,
        AgentExecutionError,
        AgentGenerationError,
        AgentInterrupted,
        AgentParsingError,
        AgentToolCallError,
        AgentToolExecutionError,
        CodeloopError,
        ExecutionError,
        ModelConfigurationError,
        ToolDefinitionError,
    )
    from .executors import LocalExecutor
    from .executors.base import ExecutionResult, Executor
    from .memory import ActionStep, AgentMemory, FinalAnswerStep, PlanningStep, RunResult, TaskStep
    from .models import (
        AnthropicModel,
        AzureOpenAIModel,
        BedrockModel,
        FallbackModel,
        HfApiModel,
        InferenceClientModel,
        LiteLLMModel,
        OllamaModel,
        OpenAIModel,
        TransformersModel,
        estimate_cost,
        model,
    )
    from .models.base import ChatMessage, Model, TokenUsage, ToolCall
    from .tool_calling_agent import ToolCallingAgent
    from .tools import (
        DuckDuckGoSearchTool,
        FinalAnswerTool,
        MCPClient,
        PythonInterpreterTool,
        Tool,
        ToolCollection,
        UserInputTool,
        VisitWebpageTool,
        WebSearchTool,
        WikipediaSearchTool,
        load_tool,
        tool,
    )


def __getattr__(name: str) -> Any:
    if name == "events":
        return importlib.import_module(".events", __name__)
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'codeloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
