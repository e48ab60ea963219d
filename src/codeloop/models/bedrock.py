"""`BedrockModel`: models on Amazon Bedrock through boto3's Converse API (`codeloop[bedrock]`).

Converse is Bedrock's one message shape for every model family: tools go in `toolConfig`, stop sequences in
`inferenceConfig.stopSequences` (sent, not dropped), structured output in `outputConfig.textFormat`, images
as bytes. boto3's own retries are switched off so the shared retry policy applies.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

from ..errors import ModelConfigurationError
from .base import ChatMessage, StreamDelta, TokenUsage, ToolCall, ToolCallDelta, parse_arguments, trim_at_stop
from .reliability import (
    RETRYABLE_STATUSES,
    MalformedResponseError,
    ProviderFailure,
    StreamCutError,
    retry_after_seconds,
)
from .remote import RemoteModel, block_turns, trim_stream
from .structured import schema_of

__all__ = ["BedrockModel", "to_converse_messages", "usage_from_converse"]

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "TooManyRequestsException",
    }
)

# Per-request options that belong in `inferenceConfig`, in either spelling.
_INFERENCE_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "topP": "topP",
    "max_tokens": "maxTokens",
    "maxTokens": "maxTokens",
}


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelConfigurationError('BedrockModel needs `boto3`: pip install "codeloop[bedrock]"') from exc
    return boto3


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("url"):
        raise ModelConfigurationError(
            "Bedrock Converse takes images as bytes, not URLs: pass {'type': 'image', 'data': <base64>, "
            "'mime_type': ...} instead of {'url': ...}"
        )
    fmt = (part.get("mime_type") or "image/png").split("/")[-1].replace("jpg", "jpeg")
    return {"image": {"format": fmt, "source": {"bytes": base64.b64decode(part["data"])}}}


def _blocks(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        elif part.get("type") == "image":
            blocks.append(_image_block(part))
    return blocks


def to_converse_messages(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Neutral messages as Converse `(system, messages)`; tool results are `toolResult` blocks in a user turn."""
    return block_turns(
        messages,
        _blocks,
        tool_result=lambda msg: {
            "toolResult": {
                "toolUseId": msg.tool_call_id or "",
                "content": _blocks(msg.content) or [{"text": "(no output)"}],
            }
        },
        tool_use=lambda call, arguments: {
            "toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}
        },
    )


def usage_from_converse(usage: dict[str, Any] | None) -> TokenUsage | None:
    """Converse usage as `TokenUsage` (cached prompt tokens counted in `input_tokens`)."""
    if not usage:
        return None
    read = int(usage.get("cacheReadInputTokens", 0) or 0)
    write = int(usage.get("cacheWriteInputTokens", 0) or 0)
    return TokenUsage(
        input_tokens=int(usage.get("inputTokens", 0) or 0) + read + write,
        output_tokens=int(usage.get("outputTokens", 0) or 0),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


class BedrockModel(RemoteModel):
    """A model on Amazon Bedrock through the Converse API.

    Args:
        model_id: A Bedrock model or inference-profile id, e.g. `"us.anthropic.claude-sonnet-4-5-20250929-v1:0"`.
        region: AWS region; defaults to `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
        endpoint_url: Another endpoint speaking Converse (a VPC endpoint, a test server).
        max_tokens: `inferenceConfig.maxTokens`, when set.
        prompt_caching: Add Converse `cachePoint`s after the system prompt and the tools.
        client_kwargs: Extra arguments for `boto3.client("bedrock-runtime", ...)` (credentials, ...).
        **kwargs: Retry options (see `RemoteModel`) and `inferenceConfig` entries (`temperature`, `topP`).
    """

    provider = "bedrock"

    def __init__(
        self,
        model_id: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        max_tokens: int | None = None,
        prompt_caching: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.region = (
            region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        self.endpoint_url = endpoint_url
        self.max_tokens = max_tokens
        self.prompt_caching = prompt_caching
        self.client_kwargs = dict(client_kwargs or {})
        explicit = "aws_access_key_id" in self.client_kwargs or os.environ.get("AWS_BEARER_TOKEN_BEDROCK")
        if not explicit and _import_boto3().Session().get_credentials() is None:
            raise ModelConfigurationError(
                "bedrock: no AWS credentials. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or "
                "the Bedrock API key AWS_BEARER_TOKEN_BEDROCK), or pass client_kwargs={'aws_access_key_id': ...}"
            )

    def create_client(self) -> Any:
        """The boto3 `bedrock-runtime` client (boto3 retries off, timeouts set); made on first use of `client`."""
        from botocore.config import Config

        timeout = self.timeout or 60.0
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        options: dict[str, Any] = {"region_name": self.region, "config": config}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        options.update(self.client_kwargs)
        return _import_boto3().client("bedrock-runtime", **options)

    def build_request(
        self,
        messages: list[ChatMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `converse` / `converse_stream` for this call."""
        system, turns = to_converse_messages(messages)
        request: dict[str, Any] = {"modelId": self.model_id, "messages": turns}
        if system:
            request["system"] = system + (
                [{"cachePoint": {"type": "default"}}] if self.prompt_caching else []
            )
        inference: dict[str, Any] = {}
        for key, value in self.generate_kwargs.items():
            if key in _INFERENCE_KEYS:
                inference[_INFERENCE_KEYS[key]] = value
            else:
                request[key] = value  # Converse's own top-level fields, e.g. additionalModelRequestFields
        if self.max_tokens is not None:
            inference["maxTokens"] = self.max_tokens
        if stop:
            inference["stopSequences"] = stop
        if inference:
            request["inferenceConfig"] = inference
        if tools:
            specs: list[dict[str, Any]] = [
                {
                    "toolSpec": {
                        "name": t["name"],
                        "description": t.get("description") or t["name"],
                        "inputSchema": {"json": t.get("parameters") or {"type": "object", "properties": {}}},
                    }
                }
                for t in tools
            ]
            if self.prompt_caching:
                specs.append({"cachePoint": {"type": "default"}})
            request["toolConfig"] = {"tools": specs}
        if response_format is not None:
            name, schema = schema_of(response_format)
            request["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"name": name, "schema": json.dumps(schema)}},
                }
            }
        return request

    def classify_error(self, exc: BaseException) -> ProviderFailure | None:
        """botocore errors as `ProviderFailure`s: throttling, 5xx and connection problems retry."""
        from botocore import exceptions as boto_errors

        if isinstance(exc, boto_errors.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.get("Code", ""))
            message = str(error.get("Message") or exc)
            retryable = code in _RETRYABLE_CODES or (status in RETRYABLE_STATUSES)
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
            return ProviderFailure(
                status,
                f"{code}: {message}" if code else message,
                retryable=retryable,
                retry_after=retry_after_seconds(headers),
            )
        connection_errors = (
            boto_errors.EndpointConnectionError,
            boto_errors.ConnectionClosedError,
            boto_errors.ReadTimeoutError,
            boto_errors.ConnectTimeoutError,
            boto_errors.ResponseStreamingError,
        )
        if isinstance(exc, connection_errors):
            return ProviderFailure(None, f"{type(exc).__name__}: {exc}", retryable=True)
        if isinstance(exc, json.JSONDecodeError):
            return ProviderFailure(None, f"malformed response: {exc}", retryable=True)
        return super().classify_error(exc)

    def _message(self, response: dict[str, Any], stop: list[str] | None) -> ChatMessage:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for block in ((response.get("output") or {}).get("message") or {}).get("content") or []:
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(ToolCall(use["toolUseId"], use["name"], parse_arguments(use.get("input"))))
            elif "reasoningContent" in block:
                reasoning.append(((block["reasoningContent"].get("reasoningText")) or {}).get("text", ""))
        return ChatMessage(
            role="assistant",
            content=trim_at_stop("".join(text), stop) if text else None,
            tool_calls=calls,
            token_usage=usage_from_converse(response.get("usage")),
            reasoning="".join(reasoning) or None,
            raw=response,
        )

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatMessage:
        """One reply through `converse`."""
        request = self.build_request(messages, stop, tools, response_format)
        return self._message(self.retrier.call(lambda: _checked(self.client.converse(**request))), stop)

    def generate_stream(
        self,
        messages: list[ChatMessage],
        *,
        stop: list[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Iterator[StreamDelta]:
        """Deltas from `converse_stream`; usage (from the `metadata` event) on the last one.

        The async twins run these in a worker thread (boto3 has no async client).
        """
        request = self.build_request(messages, stop, tools, response_format)

        def open_stream() -> Iterator[StreamDelta]:
            tool_index: dict[int, int] = {}
            stopped = False
            usage: TokenUsage | None = None
            for event in self.client.converse_stream(**request)["stream"]:
                if "contentBlockStart" in event:
                    start = event["contentBlockStart"]
                    use = (start.get("start") or {}).get("toolUse")
                    if use:
                        index = tool_index.setdefault(start["contentBlockIndex"], len(tool_index))
                        yield StreamDelta(tool_calls=[ToolCallDelta(index, use["toolUseId"], use["name"])])
                elif "contentBlockDelta" in event:
                    block = event["contentBlockDelta"]
                    delta = block.get("delta") or {}
                    if "text" in delta:
                        yield StreamDelta(content=delta["text"])
                    elif "toolUse" in delta and block["contentBlockIndex"] in tool_index:
                        index = tool_index[block["contentBlockIndex"]]
                        yield StreamDelta(
                            tool_calls=[ToolCallDelta(index, arguments=delta["toolUse"].get("input", ""))]
                        )
                    elif "reasoningContent" in delta and delta["reasoningContent"].get("text"):
                        yield StreamDelta(reasoning=delta["reasoningContent"]["text"])
                elif "messageStop" in event:
                    stopped = True
                elif "metadata" in event:
                    usage = usage_from_converse(event["metadata"].get("usage"))
            if not stopped:
                raise StreamCutError("the stream ended before messageStop")
            yield StreamDelta(token_usage=usage or TokenUsage())

        yield from trim_stream(self.retrier.stream(open_stream), stop)


def _checked(response: dict[str, Any]) -> dict[str, Any]:
    # botocore turns an unparseable body into an empty dict instead of raising; a reply without `output` is
    # not a Converse response, so it is retried like any other malformed answer.
    if not isinstance(response.get("output"), dict):
        raise MalformedResponseError("the Converse response has no `output`")
    return response
