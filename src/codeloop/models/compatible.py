"""Named OpenAI-compatible providers: each is `OpenAIModel` with its base URL and API-key variable filled in.

`model("groq:llama-3.3-70b-versatile")` is the same as
`OpenAIModel("llama-3.3-70b-versatile", api_base="https://api.groq.com/openai/v1", api_key=$GROQ_API_KEY)`.
Passing `api_base` points any of them elsewhere (a proxy, a test server); then no key is required.
"""

from __future__ import annotations

from .openai import OpenAIModel

__all__ = [
    "OllamaModel",
    "VLLMModel",
    "OpenRouterModel",
    "TogetherModel",
    "GroqModel",
    "GeminiModel",
    "DeepSeekModel",
    "MistralModel",
    "COMPATIBLE_PROVIDERS",
]


class OllamaModel(OpenAIModel):
    """A model served by a local Ollama (`http://127.0.0.1:11434/v1`); no key needed."""

    provider = "ollama"
    api_key_env = "OLLAMA_API_KEY"
    default_api_base = "http://127.0.0.1:11434/v1"
    key_required_by_default = False


class VLLMModel(OpenAIModel):
    """A model served by a local vLLM server (`http://127.0.0.1:8000/v1`); `VLLM_API_KEY` if it wants one."""

    provider = "vllm"
    api_key_env = "VLLM_API_KEY"
    default_api_base = "http://127.0.0.1:8000/v1"
    key_required_by_default = False


class OpenRouterModel(OpenAIModel):
    """A model through OpenRouter; key in `OPENROUTER_API_KEY`."""

    provider = "openrouter"
    api_key_env = "OPENROUTER_API_KEY"
    default_api_base = "https://openrouter.ai/api/v1"


class TogetherModel(OpenAIModel):
    """A model on Together AI; key in `TOGETHER_API_KEY`."""

    provider = "together"
    api_key_env = "TOGETHER_API_KEY"
    default_api_base = "https://api.together.xyz/v1"


class GroqModel(OpenAIModel):
    """A model on Groq; key in `GROQ_API_KEY`."""

    provider = "groq"
    api_key_env = "GROQ_API_KEY"
    default_api_base = "https://api.groq.com/openai/v1"


class GeminiModel(OpenAIModel):
    """A Google Gemini model through its OpenAI-compatible endpoint; key in `GEMINI_API_KEY`."""

    provider = "gemini"
    api_key_env = "GEMINI_API_KEY"
    default_api_base = "https://generativelanguage.googleapis.com/v1beta/openai/"


class DeepSeekModel(OpenAIModel):
    """A DeepSeek model; key in `DEEPSEEK_API_KEY`. Reasoning text (`reasoning_content`) lands in `reasoning`."""

    provider = "deepseek"
    api_key_env = "DEEPSEEK_API_KEY"
    default_api_base = "https://api.deepseek.com/v1"


class MistralModel(OpenAIModel):
    """A Mistral model; key in `MISTRAL_API_KEY`."""

    provider = "mistral"
    api_key_env = "MISTRAL_API_KEY"
    default_api_base = "https://api.mistral.ai/v1"


COMPATIBLE_PROVIDERS: dict[str, type[OpenAIModel]] = {
    cls.provider: cls
    for cls in (
        OllamaModel,
        VLLMModel,
        OpenRouterModel,
        TogetherModel,
        GroqModel,
        GeminiModel,
        DeepSeekModel,
        MistralModel,
    )
}
