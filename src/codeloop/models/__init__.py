"""Models: the neutral contract (`codeloop.models.base`), one adapter per provider, and a string factory.

`model("openai:gpt-4o")`, `model("anthropic:claude-sonnet-4-5")`, `model("ollama:qwen2.5-coder:7b")`: the part
before the first colon names the provider, the rest is the provider's model id. Adapters and their SDKs are
imported only when used, so `import codeloop.models` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .anthropic import AnthropicModel
    from .azure import AzureOpenAIModel
    from .base import ChatMessage, Model, StreamDelta, TokenUsage, ToolCall, ToolCallDelta
    from .bedrock import BedrockModel
    from .compatible import (
        DeepSeekModel,
        GeminiModel,
        GroqModel,
        MistralModel,
        OllamaModel,
        OpenRouterModel,
        TogetherModel,
        VLLMModel,
    )
    from .fallback import FallbackModel
    from .hf import HfApiModel, InferenceClientModel
    from .litellm import LiteLLMModel
    from .openai import OpenAIModel
    from .pricing import estimate_cost
    from .transformers import TransformersModel

__all__ = [
    "model",
    "known_providers",
    "ChatMessage",
    "Model",
    "StreamDelta",
    "TokenUsage",
    "ToolCall",
    "ToolCallDelta",
    "OpenAIModel",
    "AzureOpenAIModel",
    "AnthropicModel",
    "InferenceClientModel",
    "HfApiModel",
    "LiteLLMModel",
    "TransformersModel",
    "BedrockModel",
    "FallbackModel",
    "estimate_cost",
    "OllamaModel",
    "VLLMModel",
    "OpenRouterModel",
    "TogetherModel",
    "GroqModel",
    "GeminiModel",
    "DeepSeekModel",
    "MistralModel",
]

# provider prefix -> (module, class name)
_PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": (".openai", "OpenAIModel"),
    "azure": (".azure", "AzureOpenAIModel"),
    "anthropic": (".anthropic", "AnthropicModel"),
    "hf": (".hf", "InferenceClientModel"),
    "litellm": (".litellm", "LiteLLMModel"),
    "transformers": (".transformers", "TransformersModel"),
    "bedrock": (".bedrock", "BedrockModel"),
    "ollama": (".compatible", "OllamaModel"),
    "vllm": (".compatible", "VLLMModel"),
    "openrouter": (".compatible", "OpenRouterModel"),
    "together": (".compatible", "TogetherModel"),
    "groq": (".compatible", "GroqModel"),
    "gemini": (".compatible", "GeminiModel"),
    "deepseek": (".compatible", "DeepSeekModel"),
    "mistral": (".compatible", "MistralModel"),
}

# public name -> module that defines it
_LAZY: dict[str, str] = {
    **{cls: module for module, cls in _PROVIDERS.values()},
    "HfApiModel": ".hf",
    "FallbackModel": ".fallback",
    "estimate_cost": ".pricing",
    "ChatMessage": ".base",
    "Model": ".base",
    "StreamDelta": ".base",
    "TokenUsage": ".base",
    "ToolCall": ".base",
    "ToolCallDelta": ".base",
}


def known_providers() -> list[str]:
    """The provider prefixes `model()` accepts, sorted."""
    return sorted(_PROVIDERS)


def model(spec: str, **kwargs: Any) -> Model:
    """The model a `"provider:model_id"` spec names; `kwargs` go to the adapter's constructor.

    Raises `ModelConfigurationError` (a `ValueError`) for a malformed spec or an unknown provider, listing the
    known providers.
    """
    from ..errors import ModelConfigurationError

    provider, sep, model_id = spec.partition(":")
    known = ", ".join(known_providers())
    if not sep or not provider or not model_id:
        raise ModelConfigurationError(
            f"model spec {spec!r} must look like 'provider:model_id', e.g. 'openai:gpt-4o'; known providers: {known}"
        )
    entry = _PROVIDERS.get(provider.lower())
    if entry is None:
        raise ModelConfigurationError(
            f"unknown model provider {provider!r} in {spec!r}; known providers: {known}"
        )
    module, name = entry
    cls = getattr(importlib.import_module(module, __name__), name)
    instance: Model = cls(model_id, **kwargs)
    return instance


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
