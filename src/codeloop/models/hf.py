"""`InferenceClientModel` (alias `HfApiModel`): Hugging Face inference via `huggingface_hub` (`codeloop[hf]`).

Reaches Hugging Face Inference Providers (routed by `provider`), a dedicated Inference Endpoint, or any TGI /
OpenAI-compatible server through `api_base`. Messages and tools use the Chat Completions shapes, which
`InferenceClient.chat_completion` speaks.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ModelConfigurationError
from ._openai_format import ChatCompletionsModel, to_openai_messages, to_openai_tools
from .base import ChatMessage
from .reliability import RETRYABLE_STATUSES, ProviderFailure, retry_after_seconds

__all__ = ["InferenceClientModel", "HfApiModel"]


def _import_hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelConfigurationError(
            'InferenceClientModel needs `huggingface_hub`: pip install "codeloop[hf]"'
        ) from exc
    return huggingface_hub


class InferenceClientModel(ChatCompletionsModel):
    """A model served through Hugging Face's `InferenceClient`.

    Args:
        model_id: A Hub model id, e.g. `"Qwen/Qwen2.5-Coder-32B-Instruct"`.
        provider: An Inference Provider (`"together"`, `"hf-inference"`, ...); `None` lets the Hub route.
        token: Defaults to `HF_TOKEN` (or the token saved by `hf auth login`); not required with `api_base`.
        api_base: A TGI / Inference Endpoint / OpenAI-compatible URL to call instead of the Hub router.
        client_kwargs: Extra arguments for `InferenceClient(...)` (`headers`, `bill_to`, ...).
        **kwargs: Retry options (see `RemoteModel`) and per-request options (`temperature`, `max_tokens`, ...).
    """

    provider = "hf"
    api_key_env = "HF_TOKEN"

    def __init__(
        self,
        model_id: str,
        provider: str | None = None,
        token: str | None = None,
        api_base: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        *,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.inference_provider = provider
        self.api_base = api_base
        key = token or api_key or os.environ.get(self.api_key_env)
        if not key and api_base is None:
            key = _import_hub().get_token()
            if not key:
                raise ModelConfigurationError(
                    "hf: no Hugging Face token. Set the HF_TOKEN environment variable, run `hf auth login`, "
                    "or pass token=..."
                )
        self.token = key
        self.client_kwargs = dict(client_kwargs or {})

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"token": self.token or "not-needed", "timeout": self.timeout}
        if self.api_base:
            options["base_url"] = self.api_base
        else:
            options["provider"] = self.inference_provider
        options.update(self.client_kwargs)
        return options

    def create_client(self) -> Any:
        """A `huggingface_hub.InferenceClient` for this model's endpoint."""
        return _import_hub().InferenceClient(**self._options())

    def create_async_client(self) -> Any:
        """A `huggingface_hub.AsyncInferenceClient` for this model's endpoint."""
        return _import_hub().AsyncInferenceClient(**self._options())

    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `chat_completion` for this call."""
        request: dict[str, Any] = {"messages": to_openai_messages(messages), "model": self.model_id}
        hf_tools = to_openai_tools(tools)
        if hf_tools:
            request["tools"] = hf_tools
        if stop:
            request["stop"] = stop
        if response_format is not None:
            request["response_format"] = response_format
        request.update(self.generate_kwargs)
        return request

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """`HfHubHTTPError`s by status (429/5xx retry); connection errors retry; malformed bodies retry."""
        hub = _import_hub()
        if isinstance(exc, hub.errors.HfHubHTTPError) and exc.response is not None:
            status = int(exc.response.status_code)
            message = _server_message(exc)
            return ProviderFailure(
                status,
                message,
                retryable=status in RETRYABLE_STATUSES,
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if isinstance(exc, (json.JSONDecodeError, ValueError)) and "JSON" in f"{type(exc).__name__}{exc}":
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return super().classify_error(exc)

    def create_completion(self, request: dict[str, Any]) -> Any:
        """`InferenceClient.chat_completion`."""
        return self.client.chat_completion(**request)

    def acreate_completion(self, request: dict[str, Any]) -> Any:
        """`AsyncInferenceClient.chat_completion` on this event loop's client."""
        return self._async_client().chat_completion(**request)


def _server_message(exc: Any) -> str:
    # The provider's own message: `error.message` (OpenAI shape) or `error` (TGI shape) of the JSON body.
    try:
        body = exc.response.json()
    except Exception:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(exc.server_message or exc).strip()


HfApiModel = InferenceClientModel
"""The name smolagents' early releases used; the same class."""
