"""`AzureOpenAIModel`: OpenAI models deployed on Azure, through the `openai` SDK's `AzureOpenAI` client."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ModelConfigurationError
from .openai import OpenAIModel, import_openai
from .remote import resolve_api_key

__all__ = ["AzureOpenAIModel", "DEFAULT_AZURE_API_VERSION"]

DEFAULT_AZURE_API_VERSION = "2024-10-21"
"""The GA Azure OpenAI data-plane version used when neither `api_version` nor `OPENAI_API_VERSION` is set."""


class AzureOpenAIModel(OpenAIModel):
    """A deployment on Azure OpenAI: requests go to `{endpoint}/openai/deployments/{deployment}/...`.

    Args:
        model_id: The deployment name (Azure routes by deployment, not by model name).
        azure_endpoint: `https://<resource>.openai.azure.com`; defaults to `AZURE_OPENAI_ENDPOINT`.
        api_key: Defaults to `AZURE_OPENAI_API_KEY`; not needed with `azure_ad_token_provider` in `client_kwargs`.
        api_version: Defaults to `OPENAI_API_VERSION`, else `DEFAULT_AZURE_API_VERSION`.
        client_kwargs: Extra arguments for `openai.AzureOpenAI(...)`.
        supports_stop: As for `OpenAIModel`; Azure deployment names rarely reveal a reasoning model, so pass
            `False` for o-series / gpt-5 deployments.
        **kwargs: Retry options and per-request options, as for `OpenAIModel`.
    """

    provider = "azure"
    api_key_env = "AZURE_OPENAI_API_KEY"

    def __init__(
        self,
        model_id: str,
        azure_endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        supports_stop: bool | None = None,
        **kwargs: Any,
    ) -> None:
        endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ModelConfigurationError(
                "azure: no endpoint. Set AZURE_OPENAI_ENDPOINT (https://<resource>.openai.azure.com) "
                "or pass azure_endpoint=..."
            )
        token_auth = any(k in (client_kwargs or {}) for k in ("azure_ad_token_provider", "azure_ad_token"))
        key = resolve_api_key(api_key, self.api_key_env, self.provider, required=not token_auth)
        super().__init__(
            model_id,
            api_base=endpoint,
            api_key=key or "unused",
            client_kwargs=client_kwargs,
            supports_stop=supports_stop,
            **kwargs,
        )
        self.api_key = key or ""
        self.api_version = api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION

    def _azure_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "azure_endpoint": self.api_base,
            "api_version": self.api_version,
            "max_retries": 0,
            "timeout": self.timeout,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        options.update(self.client_kwargs)
        return options

    def create_client(self) -> Any:
        """`openai.AzureOpenAI` for the endpoint and API version."""
        return import_openai().AzureOpenAI(**self._azure_options())

    def create_async_client(self) -> Any:
        """`openai.AsyncAzureOpenAI` for the endpoint and API version."""
        return import_openai().AsyncAzureOpenAI(**self._azure_options())
