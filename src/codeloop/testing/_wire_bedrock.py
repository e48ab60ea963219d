"""Bedrock Converse wire shapes for the scripted server: `/converse` JSON and `/converse-stream` AWS event stream."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from ..models.base import ChatMessage, TokenUsage, ToolCall, parse_arguments
from ._wire_anthropic import arguments_dict, arguments_text, messages_from_turns, simplify_parts
from ._wire_openai import split_text
from .scripted import ScriptRequest

__all__ = ["BedrockWire", "encode_event"]


def encode_event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message: prelude, CRC, string headers, JSON payload, CRC."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        raw_name, raw_value = name.encode(), value.encode()
        headers += (
            struct.pack("!B", len(raw_name))
            + raw_name
            + b"\x07"
            + struct.pack("!H", len(raw_value))
            + raw_value
        )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


def _neutral_part(block: dict[str, Any]) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "image" in block:
        image = block["image"]
        data = (image.get("source") or {}).get("bytes", "")
        return {"type": "image", "data": data, "mime_type": f"image/{image.get('format', 'png')}"}
    return None


def _read_block(block: dict[str, Any]) -> ChatMessage | ToolCall | dict[str, Any] | None:
    if "toolResult" in block:
        result = block["toolResult"]
        inner = [p for p in (_neutral_part(b) for b in result.get("content") or []) if p]
        return ChatMessage(role="tool", content=simplify_parts(inner), tool_call_id=result.get("toolUseId"))
    if "toolUse" in block:
        use = block["toolUse"]
        return ToolCall(use.get("toolUseId", ""), use.get("name", ""), parse_arguments(use.get("input")))
    return _neutral_part(block)


def messages_from_wire(body: dict[str, Any]) -> list[ChatMessage]:
    """Neutral messages of a Converse request; `toolResult` blocks become `tool` messages."""
    out: list[ChatMessage] = []
    system = "".join(b.get("text", "") for b in body.get("system") or [])
    if system:
        out.append(ChatMessage(role="system", content=system))
    return out + messages_from_turns(body.get("messages") or [], _read_block)


def _usage(usage: TokenUsage | None) -> dict[str, int]:
    u = usage or TokenUsage()
    fresh = max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens)
    return {
        "inputTokens": fresh,
        "outputTokens": u.output_tokens,
        "totalTokens": fresh + u.output_tokens,
        "cacheReadInputTokens": u.cache_read_tokens,
        "cacheWriteInputTokens": u.cache_write_tokens,
    }


class BedrockWire:
    """`POST /model/{modelId}/converse` and `/converse-stream`."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def parse(self, body: dict[str, Any], params: dict[str, str]) -> ScriptRequest:
        tool_config = body.get("toolConfig") or {}
        tools = [
            {
                "name": spec["name"],
                "description": spec.get("description", ""),
                "parameters": (spec.get("inputSchema") or {}).get("json", {}),
            }
            for spec in (t.get("toolSpec") for t in tool_config.get("tools") or [])
            if spec
        ]
        text_format = (body.get("outputConfig") or {}).get("textFormat") or {}
        json_schema = (text_format.get("structure") or {}).get("jsonSchema")
        response_format = None
        if json_schema:
            schema = json.loads(json_schema.get("schema") or "{}")
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": json_schema.get("name", "response"), "schema": schema},
            }
        return ScriptRequest(
            messages=messages_from_wire(body),
            stop=(body.get("inferenceConfig") or {}).get("stopSequences"),
            tools=tools or None,
            response_format=response_format,
            raw=body,
        )

    def model_name(self, body: dict[str, Any], params: dict[str, str]) -> str:
        return params.get("model", "")

    def is_streaming(self, body: dict[str, Any], params: dict[str, str]) -> bool:
        return params.get("action") == "converse-stream"

    def _stop_reason(self, msg: ChatMessage, params: dict[str, str]) -> str:
        if msg.tool_calls:
            return "tool_use"
        return "stop_sequence" if params.get("stop_sequence") else "end_turn"

    def response(self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]) -> bytes:
        content: list[dict[str, Any]] = []
        if msg.reasoning:
            content.append(
                {"reasoningContent": {"reasoningText": {"text": msg.reasoning, "signature": "sig"}}}
            )
        if msg.text:
            content.append({"text": msg.text})
        for call in msg.tool_calls:
            content.append(
                {"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments_dict(call)}}
            )
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop_reason(msg, params),
            "usage": _usage(msg.token_usage),
            "metrics": {"latencyMs": 1},
        }
        return json.dumps(body).encode()

    def stream(
        self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]
    ) -> tuple[str, list[bytes]]:
        events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        index = 0
        if msg.reasoning:
            for piece in split_text(msg.reasoning, self.chunk_size):
                delta = {"reasoningContent": {"text": piece}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if msg.text:
            for piece in split_text(msg.text, self.chunk_size):
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for call in msg.tool_calls:
            start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            for piece in split_text(arguments_text(call), self.chunk_size):
                delta = {"toolUse": {"input": piece}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            events.append(("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        events.append(("messageStop", {"stopReason": self._stop_reason(msg, params)}))
        events.append(("metadata", {"usage": _usage(msg.token_usage), "metrics": {"latencyMs": 1}}))
        return "application/vnd.amazon.eventstream", [encode_event(name, payload) for name, payload in events]

    def error(self, status: int, message: str, error_type: str) -> bytes:
        codes = {
            429: "ThrottlingException",
            400: "ValidationException",
            403: "AccessDeniedException",
            404: "ResourceNotFoundException",
            503: "ServiceUnavailableException",
        }
        code = codes.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        return json.dumps({"__type": code, "message": message}).encode()
