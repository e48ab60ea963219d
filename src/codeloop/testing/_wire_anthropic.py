"""Anthropic Messages wire shapes for the scripted server: request in, message and SSE event sequence out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from ..models.base import ChatMessage, TokenUsage, ToolCall, parse_arguments
from ._wire_openai import split_text
from .scripted import ScriptRequest

__all__ = ["AnthropicWire", "arguments_dict", "arguments_text", "messages_from_turns", "simplify_parts"]


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _neutral_part(block: dict[str, Any]) -> dict[str, Any] | None:
    if block.get("type") == "text":
        return {"type": "text", "text": block.get("text", "")}
    if block.get("type") == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            return {"type": "image", "data": source.get("data", ""), "mime_type": source.get("media_type")}
        return {"type": "image", "url": source.get("url", "")}
    return None


def simplify_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Neutral content parts, with a lone text part read back as a plain string (the shape adapters start from)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def messages_from_turns(
    turns: list[dict[str, Any]],
    read_block: Callable[[dict[str, Any]], ChatMessage | ToolCall | dict[str, Any] | None],
) -> list[ChatMessage]:
    """The neutral messages of block-based turns (Anthropic Messages, Bedrock Converse), system prompt aside.

    `read_block` reads one block as a tool message (a tool result), a `ToolCall`, a neutral content part, or
    `None` (a block the scripts do not see).
    """
    out: list[ChatMessage] = []
    for message in turns:
        parts: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        for block in _blocks(message.get("content")):
            item = read_block(block)
            if isinstance(item, ChatMessage):
                out.append(item)
            elif isinstance(item, ToolCall):
                calls.append(item)
            elif item:
                parts.append(item)
        if parts or calls:
            role = message.get("role", "user")
            out.append(
                ChatMessage(role=role, content=simplify_parts(parts) if parts else None, tool_calls=calls)
            )
    return out


def _read_block(block: dict[str, Any]) -> ChatMessage | ToolCall | dict[str, Any] | None:
    kind = block.get("type")
    if kind == "tool_result":
        inner = [p for p in (_neutral_part(b) for b in _blocks(block.get("content"))) if p]
        return ChatMessage(role="tool", content=simplify_parts(inner), tool_call_id=block.get("tool_use_id"))
    if kind == "tool_use":
        return ToolCall(block.get("id", ""), block.get("name", ""), parse_arguments(block.get("input")))
    return _neutral_part(block)


def messages_from_wire(body: dict[str, Any]) -> list[ChatMessage]:
    """The neutral messages an Anthropic request spells (tool results become `tool` messages again)."""
    out: list[ChatMessage] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        out.append(ChatMessage(role="system", content=text))
    return out + messages_from_turns(body.get("messages") or [], _read_block)


def _usage(usage: TokenUsage | None) -> dict[str, int]:
    # Anthropic counts cached prompt tokens apart from `input_tokens`; codeloop's input_tokens includes them.
    u = usage or TokenUsage()
    return {
        "input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
    }


def arguments_dict(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the JSON object a non-streamed reply carries (`{}` when they are not one)."""
    return call.arguments if isinstance(call.arguments, dict) else {}


def arguments_text(call: ToolCall) -> str:
    """A call's arguments as streamed JSON text."""
    # Streamed tool input is raw JSON text, so a script can send invalid JSON the way a model might.
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


class AnthropicWire:
    """`POST /v1/messages`, JSON or streamed as Anthropic's SSE event sequence."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def parse(self, body: dict[str, Any], params: dict[str, str]) -> ScriptRequest:
        # GA spelling `output_config.format`; the earlier beta (still sent by some clients) used `output_format`.
        fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
        response_format = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.get("schema", {})}}
            if fmt
            else None
        )
        tools = [
            {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("input_schema", {}),
            }
            for t in body.get("tools") or []
            if "name" in t
        ]
        return ScriptRequest(
            messages=messages_from_wire(body),
            stop=body.get("stop_sequences"),
            tools=tools or None,
            response_format=response_format,
            raw=body,
        )

    def model_name(self, body: dict[str, Any], params: dict[str, str]) -> str:
        return str(body.get("model", ""))

    def is_streaming(self, body: dict[str, Any], params: dict[str, str]) -> bool:
        return bool(body.get("stream"))

    def _stop(self, msg: ChatMessage, params: dict[str, str]) -> tuple[str, str | None]:
        if msg.tool_calls:
            return "tool_use", None
        stopped = params.get("stop_sequence")
        return ("stop_sequence", stopped) if stopped else ("end_turn", None)

    def response(self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]) -> bytes:
        content: list[dict[str, Any]] = []
        if msg.reasoning:
            content.append({"type": "thinking", "thinking": msg.reasoning, "signature": "scripted-signature"})
        if msg.text:
            content.append({"type": "text", "text": msg.text})
        for call in msg.tool_calls:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_dict(call)}
            )
        stop_reason, stop_sequence = self._stop(msg, params)
        body = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": self.model_name(request.raw, params),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": _usage(msg.token_usage),
        }
        return json.dumps(body).encode()

    def stream(
        self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]
    ) -> tuple[str, list[bytes]]:
        usage = _usage(msg.token_usage)
        events: list[tuple[str, dict[str, Any]]] = []
        start_usage = {**usage, "output_tokens": 1}
        events.append(
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_{uuid.uuid4().hex[:24]}",
                        "type": "message",
                        "role": "assistant",
                        "model": self.model_name(request.raw, params),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
        )
        events.append(("ping", {"type": "ping"}))
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            for delta in deltas:
                events.append(
                    ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if msg.reasoning:
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in split_text(msg.reasoning, self.chunk_size)
            ]
            deltas.append({"type": "signature_delta", "signature": "scripted-signature"})
            block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
        if msg.text:
            block(
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": p} for p in split_text(msg.text, self.chunk_size)],
            )
        for call in msg.tool_calls:
            block(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                [
                    {"type": "input_json_delta", "partial_json": p}
                    for p in split_text(arguments_text(call), self.chunk_size)
                ],
            )
        stop_reason, stop_sequence = self._stop(msg, params)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        frames = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
        return "text/event-stream", frames

    def error(self, status: int, message: str, error_type: str) -> bytes:
        kinds = {
            429: "rate_limit_error",
            529: "overloaded_error",
            404: "not_found_error",
            400: "invalid_request_error",
        }
        kind = kinds.get(status, "api_error" if status >= 500 else error_type)
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
