"""OpenAI Chat Completions wire shapes for the scripted server: request in, response and stream chunks out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ..models.base import ChatMessage, TokenUsage, ToolCall, parse_arguments
from .scripted import ScriptRequest

__all__ = ["chat_request", "completion_body", "completion_chunks", "error_body", "split_text"]


def split_text(text: str, size: int) -> list[str]:
    """`text` in pieces of `size` characters (at least one piece when `text` is not empty)."""
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _part_from_wire(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        if url.startswith("data:") and ";base64," in url:
            head, data = url[5:].split(";base64,", 1)
            return {"type": "image", "data": data, "mime_type": head}
        return {"type": "image", "url": url}
    return dict(part)


def message_from_wire(raw: dict[str, Any]) -> ChatMessage:
    """A wire message as the neutral `ChatMessage` a script function sees."""
    content = raw.get("content")
    if isinstance(content, list):
        content = [_part_from_wire(p) for p in content]
    calls = [
        ToolCall(
            id=c.get("id", ""),
            name=(c.get("function") or {}).get("name", ""),
            arguments=parse_arguments((c.get("function") or {}).get("arguments")),
        )
        for c in raw.get("tool_calls") or []
    ]
    return ChatMessage(
        role=raw.get("role", "user"),
        content=content,
        tool_calls=calls,
        tool_call_id=raw.get("tool_call_id"),
        name=raw.get("name"),
    )


def chat_request(body: dict[str, Any]) -> ScriptRequest:
    """The `ScriptRequest` for a Chat Completions body."""
    stop = body.get("stop")
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "parameters": t["function"].get("parameters", {}),
        }
        for t in body.get("tools") or []
        if t.get("type") == "function" and "function" in t
    ]
    return ScriptRequest(
        messages=[message_from_wire(m) for m in body.get("messages") or []],
        stop=[stop] if isinstance(stop, str) else stop,
        tools=tools or None,
        response_format=_response_format(body.get("response_format")),
        raw=body,
    )


def _response_format(fmt: Any) -> dict[str, Any] | None:
    # TGI (which huggingface_hub targets) spells a schema as {"type": "json" | "json_object", "value": schema};
    # scripts see every schema in the OpenAI shape.
    if isinstance(fmt, dict) and isinstance(fmt.get("value"), dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt["value"]}}
    return fmt if isinstance(fmt, dict) else None


def usage_body(usage: TokenUsage | None) -> dict[str, Any]:
    """`TokenUsage` as the Chat Completions `usage` object."""
    u = usage or TokenUsage()
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _arguments_text(call: ToolCall) -> str:
    # A raw string is sent as is, so a script can reproduce a model emitting invalid JSON arguments.
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _finish_reason(msg: ChatMessage) -> str:
    return "tool_calls" if msg.tool_calls else "stop"


def completion_body(msg: ChatMessage, model: str) -> dict[str, Any]:
    """A complete non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": msg.text if msg.content is not None else None}
    if msg.reasoning:
        # The field OpenAI-compatible servers (DeepSeek, vLLM) use for reasoning text.
        message["reasoning_content"] = msg.reasoning
    if msg.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments_text(c)}}
            for c in msg.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(msg), "logprobs": None}],
        "usage": usage_body(msg.token_usage),
    }


def completion_chunks(
    msg: ChatMessage, model: str, *, include_usage: bool, chunk_size: int
) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed reply, in the order OpenAI sends them."""
    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": ""})
    for piece in split_text(msg.reasoning or "", chunk_size):
        yield chunk({"reasoning_content": piece})
    for piece in split_text(msg.text, chunk_size):
        yield chunk({"content": piece})
    for index, call in enumerate(msg.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in split_text(_arguments_text(call), chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_reason(msg))
    if include_usage:
        yield {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage_body(msg.token_usage),
        }


def error_body(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI error object."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}
