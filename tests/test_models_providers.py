"""The factory, every provider's spec string and credential variable, Azure's route, and the LiteLLM pin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib

from codeloop.errors import ModelConfigurationError
from codeloop.models import known_providers
from codeloop.models import model as model_from_spec
from codeloop.models.base import ChatMessage
from codeloop.models.compatible import COMPATIBLE_PROVIDERS
from codeloop.testing.server import ScriptedLLMServer

ROOT = Path(__file__).resolve().parents[1]
HI = [ChatMessage(role="user", content="hi")]

# spec -> (class name, variable a missing key error must name)
SPECS = {
    "openai:gpt-4o": ("OpenAIModel", "OPENAI_API_KEY"),
    "azure:my-deployment": ("AzureOpenAIModel", "AZURE_OPENAI_API_KEY"),
    "anthropic:claude-sonnet-4-6": ("AnthropicModel", "ANTHROPIC_API_KEY"),
    "hf:Qwen/Qwen2.5-Coder-32B-Instruct": ("InferenceClientModel", "HF_TOKEN"),
    "litellm:anthropic/claude-sonnet-4-6": ("LiteLLMModel", "ANTHROPIC_API_KEY"),
    "bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0": ("BedrockModel", "AWS_ACCESS_KEY_ID"),
    "openrouter:anthropic/claude-sonnet-4.5": ("OpenRouterModel", "OPENROUTER_API_KEY"),
    "together:meta-llama/Llama-3.3-70B-Instruct-Turbo": ("TogetherModel", "TOGETHER_API_KEY"),
    "groq:llama-3.3-70b-versatile": ("GroqModel", "GROQ_API_KEY"),
    "gemini:gemini-2.5-flash": ("GeminiModel", "GEMINI_API_KEY"),
    "deepseek:deepseek-chat": ("DeepSeekModel", "DEEPSEEK_API_KEY"),
    "mistral:mistral-large-latest": ("MistralModel", "MISTRAL_API_KEY"),
}


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in {v for _, v in SPECS.values()} | {
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
    }:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no saved `hf auth login` token
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_every_provider_is_known() -> None:
    assert set(known_providers()) == {spec.split(":")[0] for spec in SPECS} | {
        "ollama",
        "vllm",
        "transformers",
    }


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_missing_credentials_name_the_variable_before_any_request(spec: str, no_credentials: None) -> None:
    _, variable = SPECS[spec]
    with pytest.raises(ModelConfigurationError, match=variable):
        model_from_spec(spec)


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_spec_builds_the_right_class_with_the_model_id(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class_name, variable = SPECS[spec]
    monkeypatch.setenv(variable, "test-credential")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    built = model_from_spec(spec)
    assert type(built).__name__ == class_name
    assert built.model_id == spec.split(":", 1)[1]


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        model_from_spec("claude:sonnet")
    for provider in ("anthropic", "bedrock", "hf", "litellm", "ollama", "openai", "transformers"):
        assert provider in str(info.value)


def test_local_providers_need_no_key(no_credentials: None) -> None:
    assert model_from_spec("ollama:qwen2.5-coder:7b").model_id == "qwen2.5-coder:7b"
    assert model_from_spec("vllm:Qwen/Qwen2.5-7B-Instruct").model_id == "Qwen/Qwen2.5-7B-Instruct"


@pytest.mark.parametrize("provider", sorted(COMPATIBLE_PROVIDERS))
def test_compatible_shortcuts_speak_chat_completions(provider: str) -> None:
    cls = COMPATIBLE_PROVIDERS[provider]
    assert cls.default_api_base and cls.default_api_base.startswith(("https://", "http://127.0.0.1"))
    with ScriptedLLMServer([f"hello from {provider}"]) as server:
        assert model_from_spec(f"{provider}:some-model", api_base=server.base_url).generate(HI).content == (
            f"hello from {provider}"
        )
    assert server.requests[0]["model"] == "some-model"


def test_ollama_default_endpoint_is_local() -> None:
    from codeloop.models.compatible import OllamaModel

    assert OllamaModel("llama3").api_base == "http://127.0.0.1:11434/v1"


def test_azure_uses_deployment_route_api_version_and_api_key_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-secret")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    with ScriptedLLMServer(["deployed"]) as server:
        assert (
            model_from_spec("azure:prod-gpt4o", azure_endpoint=server.url).generate(HI).content == "deployed"
        )
    exchange = server.exchanges[0]
    assert exchange.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert exchange.query == {"api-version": "2025-04-01-preview"}
    assert exchange.headers["api-key"] == "azure-secret"


def test_azure_needs_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(ModelConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        model_from_spec("azure:dep", api_key="k")


def test_azure_token_provider_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with ScriptedLLMServer(["ok"]) as server:
        m = model_from_spec(
            "azure:dep",
            azure_endpoint=server.url,
            client_kwargs={"azure_ad_token_provider": lambda: "aad-token"},
        )
        assert m.generate(HI).content == "ok"
    assert server.exchanges[0].headers["authorization"] == "Bearer aad-token"


def test_hf_api_model_is_the_inference_client_model() -> None:
    from codeloop.models import HfApiModel, InferenceClientModel

    assert HfApiModel is InferenceClientModel


def test_litellm_extra_excludes_the_compromised_releases() -> None:
    from packaging.specifiers import SpecifierSet

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    for group in ("litellm", "dev"):
        spec = next(d for d in extras[group] if d.startswith("litellm"))
        allowed = SpecifierSet(spec.removeprefix("litellm"))
        assert "1.82.7" not in allowed and "1.82.8" not in allowed and "1.82.6" in allowed


def test_litellm_adapter_refuses_a_compromised_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from codeloop.models import litellm as adapter

    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "1.82.7" if name == "litellm" else real_version(name)
    )
    with pytest.raises(ModelConfigurationError, match="compromised"):
        adapter.LiteLLMModel("openai/gpt-4o", api_key="k")


def test_litellm_is_kept_offline() -> None:
    import os

    from codeloop.models.litellm import LiteLLMModel

    LiteLLMModel("openai/gpt-4o", api_key="k")
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"].lower() == "true"
    assert os.environ["LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS"].lower() == "true"


def test_importing_models_loads_no_provider_sdk() -> None:
    import subprocess

    code = (
        "import sys, codeloop.models, codeloop.models.pricing\n"
        "heavy = [m for m in ('openai', 'anthropic', 'huggingface_hub', 'litellm', 'boto3', 'transformers', 'torch')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_response_format_support_is_declared_and_enforced() -> None:
    from codeloop.models.fallback import FallbackModel
    from codeloop.models.litellm import LiteLLMModel
    from codeloop.models.openai import OpenAIModel
    from codeloop.models.structured import code_action_response_format

    assert OpenAIModel("gpt-4o", api_key="k").supports_response_format
    unsupported = LiteLLMModel("replicate/meta/llama-2-70b-chat", api_key="k")
    assert not unsupported.supports_response_format
    with ScriptedLLMServer(["unused"]) as server:
        unsupported.api_base = server.base_url
        with pytest.raises(ModelConfigurationError, match="does not take response_format"):
            unsupported.generate(HI, response_format=code_action_response_format())
        assert server.call_count == 0
    assert not FallbackModel([OpenAIModel("gpt-4o", api_key="k"), unsupported]).supports_response_format
