"""`OpenAIModel`: OpenAI and any OpenAI-compatible server, on the official `openai` SDK (`pip install codeloop[openai]`)."""

from __future__ import annotations

import json
import re
from typing import Any

from .._extras import install_hint, is_installed
from ..errors import ModelConfigurationError
from ._openai_format import (
    ChatCompletionsModel,
    error_message_from_openai,
    to_openai_messages,
    to_openai_tools,
)
from .base import ChatMessage
from .context import server_props_window
from .reliability import RETRYABLE_STATUSES, ProviderFailure, retry_after_seconds
from .remote import resolve_api_key

__all__ = ["OpenAIModel", "rejects_stop"]

# OpenAI's reasoning models answer HTTP 400 to a `stop` parameter.
_NO_STOP_MODELS = re.compile(r"^(?:[\w.-]+/)?(?:o1|o3|o4|gpt-5)(?:\b|[-_.])")


def rejects_stop(model_id: str) -> bool:
    """Whether `model_id` names a model whose API refuses `stop` (o1, o3, o4 and gpt-5 families)."""
    return bool(_NO_STOP_MODELS.match(model_id.lower()))


def import_openai() -> Any:
    """The `openai` package, or an error saying which extra installs it."""
    try:
        import openai
    except ImportError as exc:
        raise ModelConfigurationError(
            f"this model needs the `openai` package: {install_hint('openai')}"
        ) from exc
    return openai


class OpenAIModel(ChatCompletionsModel):
    """A model behind the OpenAI Chat Completions API: OpenAI itself, or any compatible server via `api_base`.

    Args:
        model_id: Model name, e.g. `"gpt-4o"`.
        api_base: Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, ...);
            `None` means api.openai.com.
        api_key: The key; defaults to the `OPENAI_API_KEY` environment variable. Required for api.openai.com;
            servers given by `api_base` get a placeholder when none is set.
        client_kwargs: Extra arguments for `openai.OpenAI(...)` / `openai.AsyncOpenAI(...)`.
        supports_stop: Whether to send `stop` to the API. `None` decides from the model name (reasoning
            models refuse it). Replies are also trimmed at the stop sequence client-side, which is what
            enforces it when it is not sent.
        prompt_cache_key: OpenAI's `prompt_cache_key`, which routes requests sharing a prefix to the same cache.
            None (the default) sends one derived from the system prompt when talking to api.openai.com (other
            servers may refuse unknown fields); True sends it to any server; False never; a string is sent as is.
        context_window: Tokens the model's context holds, for context compaction (`codeloop.compaction`).
            None looks it up: a server on this machine is asked (llama.cpp's `GET /props`), then the table of
            known models (`codeloop.models.context`).
        max_retries, timeout, retry_deadline_s, requests_per_minute, retry_base_delay: see `RemoteModel`.
        **generate_kwargs: Sent with every request (`temperature`, `max_tokens`, `reasoning_effort`, ...).
    """

    provider = "openai"
    api_key_env = "OPENAI_API_KEY"
    default_api_base: str | None = None
    """The endpoint used when `api_base` is not given (`None`: the SDK's default, api.openai.com)."""
    key_required_by_default = True
    """Whether the default endpoint needs a key (local servers such as Ollama do not)."""

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        supports_stop: bool | None = None,
        prompt_cache_key: str | bool | None = None,
        context_window: int | None = None,
        **generate_kwargs: Any,
    ) -> None:
        if context_window is not None and (
            not isinstance(context_window, int) or isinstance(context_window, bool) or context_window <= 0
        ):
            raise ValueError(f"context_window must be a positive number of tokens, got {context_window!r}")
        if not is_installed("openai"):  # say so now, not at the first (paid) call of a run
            import_openai()
        super().__init__(model_id, **generate_kwargs)
        self.api_base = api_base or self.default_api_base
        custom_endpoint = api_base is not None
        self.api_key = (
            resolve_api_key(
                api_key,
                self.api_key_env,
                self.provider,
                required=self.key_required_by_default and not custom_endpoint,
            )
            or "not-needed"
        )
        self.client_kwargs = dict(client_kwargs or {})
        self.supports_stop = (not rejects_stop(model_id)) if supports_stop is None else supports_stop
        self.prompt_cache_key = prompt_cache_key
        self.context_window = context_window
        self._server_window: tuple[int | None] | None = None  # what the server said, once it answered

    def server_context_window(self) -> int | None:
        """The context window a server on this machine reports (llama.cpp's `GET /props`), or None.

        Asked once per model object, only for a loopback `api_base` (cheap, and a hosted API has no such
        route): a hosted model's window comes from the table in `codeloop.models.context`. A server that is
        not up yet is asked again next time; one that answers without a window (llama-cpp-python's server,
        Ollama, vLLM) is not.
        """
        if self._server_window is not None:
            return self._server_window[0]
        window, answered = server_props_window(self.api_base)
        if answered:
            self._server_window = (window,)
        return window

    # -- clients -------------------------------------------------------------------------------------------------
    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": self.api_key, "max_retries": 0, "timeout": self.timeout}
        if self.api_base:
            options["base_url"] = self.api_base
        options.update(self.client_kwargs)
        return options

    def create_client(self) -> Any:
        """The synchronous SDK client (Azure overrides this)."""
        return import_openai().OpenAI(**self._client_options())

    def create_async_client(self) -> Any:
        """The async SDK client (Azure overrides this)."""
        return import_openai().AsyncOpenAI(**self._client_options())

    # -- request building ----------------------------------------------------------------------------------------
    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` for this call."""
        request: dict[str, Any] = {"model": self.model_id, "messages": to_openai_messages(messages)}
        request.update(self.generate_kwargs)
        openai_tools = to_openai_tools(tools)
        if openai_tools:
            request["tools"] = openai_tools
        else:
            # `tool_choice="auto"` is what llama-cpp-python's chatml-function-calling needs to return native
            # calls, but OpenAI rejects it (and `parallel_tool_calls`) in a request without tools, such as a
            # CodeAgent step or a forced final answer on the same model.
            request.pop("tool_choice", None)
            request.pop("parallel_tool_calls", None)
        if stop and self.supports_stop:
            request["stop"] = stop
        if response_format is not None:
            request["response_format"] = response_format
        key = self._cache_key(messages)
        if key is not None:
            request.setdefault("prompt_cache_key", key)
        return request

    def _cache_key(self, messages: list[ChatMessage]) -> str | None:
        """The `prompt_cache_key` to send: the system prompt's digest, so one agent's requests share a cache."""
        wanted = self.prompt_cache_key
        if wanted is None:
            wanted = self.provider == "openai" and self.api_base is None
        if isinstance(wanted, str) or not wanted:
            return wanted or None
        import hashlib

        system = "".join(m.text for m in messages if m.role == "system")
        return (
            "codeloop-"
            + hashlib.sha256(f"{self.model_id}\n{system}".encode("utf-8", "replace")).hexdigest()[:24]
        )

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """OpenAI SDK errors as `ProviderFailure`s: 429/5xx/connection/timeout retry, other statuses do not."""
        openai = import_openai()
        if isinstance(exc, openai.APIStatusError):
            return ProviderFailure(
                exc.status_code,
                error_message_from_openai(exc),
                retryable=exc.status_code in RETRYABLE_STATUSES,
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__}: {cause})" if cause else ""
            return ProviderFailure(None, f"{exc}{detail}", retryable=True)
        if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return super().classify_error(exc)

    def _finish(self, completion: Any, stop: list[str] | None) -> ChatMessage:
        # A reply without choices is a provider failure to report, not a bare ValueError.
        try:
            return super()._finish(completion, stop)
        except ValueError as exc:
            raise self.retrier.error(ProviderFailure(None, str(exc), retryable=False), 1) from exc

    # -- the SDK calls -------------------------------------------------------------------------------------------
    def create_completion(self, request: dict[str, Any]) -> Any:
        """`chat.completions.create` on the synchronous client."""
        return self.client.chat.completions.create(**request)

    def acreate_completion(self, request: dict[str, Any]) -> Any:
        """`chat.completions.create` on this event loop's async client."""
        return self._async_client().chat.completions.create(**request)

    def close_stream(self, stream: Any) -> None:
        """Close the SDK stream, so a stream left early does not hold its connection."""
        stream.close()

    async def aclose_stream(self, stream: Any) -> None:
        """Async twin of `close_stream`."""
        await stream.close()
