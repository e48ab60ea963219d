"""`LiteLLMModel`: any provider LiteLLM knows, through `litellm.completion` (`codeloop[litellm]`, optional).

The extra pins out LiteLLM 1.82.7 and 1.82.8, whose PyPI releases were compromised (March 2026). LiteLLM
fetches a remote price map when imported unless told otherwise; codeloop has its own price table, so the
adapter sets `LITELLM_LOCAL_MODEL_COST_MAP=True` and `LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True` (unless the
user set them) before importing it, so nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ModelConfigurationError
from ._openai_format import (
    ChatCompletionsModel,
    error_message_from_openai,
    to_openai_messages,
    to_openai_tools,
)
from .base import ChatMessage
from .reliability import RETRYABLE_STATUSES, ProviderFailure, retry_after_seconds

__all__ = ["LiteLLMModel", "COMPROMISED_LITELLM_VERSIONS"]

COMPROMISED_LITELLM_VERSIONS = frozenset({"1.82.7", "1.82.8"})
_OFFLINE_FLAGS = ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS")


def _import_litellm() -> Any:
    # LiteLLM downloads its price map and Anthropic beta-header table at run time unless told not to; codeloop
    # needs neither, and an agent library should not phone home behind the user's back.
    for flag in _OFFLINE_FLAGS:
        os.environ.setdefault(flag, "True")
    try:
        import litellm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelConfigurationError(
            'LiteLLMModel needs `litellm`: pip install "codeloop[litellm]"'
        ) from exc
    from importlib.metadata import version

    litellm.suppress_debug_info = True  # its "Give Feedback" banner on every error is noise in an agent log
    installed = version("litellm")
    if installed in COMPROMISED_LITELLM_VERSIONS:
        raise ModelConfigurationError(
            f"litellm {installed} is a compromised release; uninstall it and install another version "
            '(pip install "codeloop[litellm]" excludes it)'
        )
    return litellm


class LiteLLMModel(ChatCompletionsModel):
    """A model reached through LiteLLM, named the LiteLLM way (`"anthropic/claude-sonnet-4-5"`, ...).

    Args:
        model_id: LiteLLM model name, `provider/model`.
        api_base: Endpoint override, passed to LiteLLM.
        api_key: Key override; otherwise LiteLLM reads the provider's variable (checked at construction).
        **kwargs: Retry options (see `RemoteModel`) and per-request options for `litellm.completion`.
    """

    provider = "litellm"

    def __init__(
        self, model_id: str, api_base: str | None = None, api_key: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.api_base = api_base
        self.api_key = api_key
        self._litellm = _import_litellm()
        if api_key is None and api_base is None:
            check = self._litellm.validate_environment(model_id)
            missing = check.get("missing_keys") or []
            if missing:
                raise ModelConfigurationError(
                    f"litellm: {model_id!r} needs {', '.join(missing)}; set "
                    f"{'it' if len(missing) == 1 else 'them'} in the environment or pass api_key=..."
                )

    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `litellm.completion` for this call."""
        request: dict[str, Any] = {
            "model": self.model_id,
            "messages": to_openai_messages(messages),
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.timeout is not None:
            request["timeout"] = self.timeout
        if self.api_base:
            request["api_base"] = self.api_base
        if self.api_key:
            request["api_key"] = self.api_key
        openai_tools = to_openai_tools(tools)
        if openai_tools:
            request["tools"] = openai_tools
        if stop:
            request["stop"] = stop
        if response_format is not None:
            if not self.supports_response_format:
                raise ModelConfigurationError(
                    f"litellm: {self.model_id!r} does not take response_format (per LiteLLM's model table); "
                    "use a model with JSON Schema output or leave structured outputs off"
                )
            request["response_format"] = response_format
        request.update(self.generate_kwargs)
        return request

    @property
    def supports_response_format(self) -> bool:  # type: ignore[override]
        """What LiteLLM's model table says about `response_format` for this model (unknown models: yes)."""
        try:
            params = self._litellm.get_supported_openai_params(model=self.model_id)
        except Exception:
            return True
        return params is None or "response_format" in params

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """LiteLLM's exceptions (OpenAI-style, with `status_code`) as `ProviderFailure`s."""
        exceptions = self._litellm.exceptions
        if isinstance(exc, (exceptions.Timeout, exceptions.APIConnectionError)):
            return ProviderFailure(None, str(getattr(exc, "message", exc)), retryable=True)
        status = getattr(exc, "status_code", None)
        if type(exc).__module__.startswith(("litellm", "openai")) and isinstance(status, int):
            # LiteLLM keeps the provider's response headers (Retry-After among them) on its own attribute.
            response = getattr(exc, "response", None)
            headers = (
                getattr(exc, "litellm_response_headers", None)
                or getattr(response, "headers", None)
                or getattr(exc, "headers", None)
            )
            return ProviderFailure(
                status,
                error_message_from_openai(exc),
                retryable=status in RETRYABLE_STATUSES,
                retry_after=retry_after_seconds(headers),
            )
        if isinstance(exc, json.JSONDecodeError):
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return super().classify_error(exc)

    def create_completion(self, request: dict[str, Any]) -> Any:
        """`litellm.completion`."""
        return self._litellm.completion(**request)

    def acreate_completion(self, request: dict[str, Any]) -> Any:
        """`litellm.acompletion`."""
        return self._litellm.acompletion(**request)
