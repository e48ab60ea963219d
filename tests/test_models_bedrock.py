"""BedrockModel's Converse shapes, through boto3 against the scripted server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from codeloop.errors import ModelConfigurationError
from codeloop.models.base import ChatMessage, ToolCall
from codeloop.models.bedrock import BedrockModel
from codeloop.testing.server import ScriptedLLMServer

AWS = {"aws_access_key_id": "AKIATEST", "aws_secret_access_key": "secret"}
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
TOOLS = [
    {
        "name": "lookup",
        "description": "Look up.",
        "parameters": {"type": "object", "properties": {"k": {"type": "string"}}},
    }
]


def make(server: ScriptedLLMServer, **kw: Any) -> BedrockModel:
    return BedrockModel(MODEL, endpoint_url=server.url, client_kwargs=AWS, region="eu-west-1", **kw)


def test_converse_request_shape() -> None:
    png = base64.b64encode(b"image bytes").decode()
    history = [
        ChatMessage(role="system", content="Be exact."),
        ChatMessage(
            role="user",
            content=[
                {"type": "text", "text": "What is this?"},
                {"type": "image", "data": png, "mime_type": "image/jpeg"},
            ],
        ),
        ChatMessage(role="assistant", tool_calls=[ToolCall("tu_1", "lookup", {"k": "v"})]),
        ChatMessage(role="tool", content="found", tool_call_id="tu_1"),
    ]
    with ScriptedLLMServer(["A photo."]) as server:
        make(server, max_tokens=256, temperature=0.2).generate(history, tools=TOOLS, stop=["STOP"])
    exchange = server.exchanges[0]
    assert exchange.path == f"/model/{MODEL.replace(':', '%3A')}/converse"
    assert (
        exchange.headers["authorization"].startswith("AWS4-HMAC-SHA256")
        and "eu-west-1/bedrock" in exchange.headers["authorization"]
    )
    body = server.requests[0]
    assert body["system"] == [{"text": "Be exact."}]
    assert body["inferenceConfig"] == {"temperature": 0.2, "maxTokens": 256, "stopSequences": ["STOP"]}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == TOOLS[0]["parameters"]
    user, assistant, tool_turn = body["messages"]
    assert user["content"][1]["image"]["format"] == "jpeg"
    assert base64.b64decode(user["content"][1]["image"]["source"]["bytes"]) == b"image bytes"
    assert assistant["content"][0]["toolUse"] == {"toolUseId": "tu_1", "name": "lookup", "input": {"k": "v"}}
    assert tool_turn["role"] == "user" and tool_turn["content"][0]["toolResult"]["toolUseId"] == "tu_1"


def test_stream_goes_to_converse_stream() -> None:
    with ScriptedLLMServer([{"content": "streamed words here", "reasoning": "r"}]) as server:
        deltas = list(make(server).generate_stream([ChatMessage(role="user", content="hi")]))
    assert server.exchanges[0].path.endswith("/converse-stream")
    assert "".join(d.content or "" for d in deltas) == "streamed words here"
    assert "".join(d.reasoning or "" for d in deltas) == "r"
    assert deltas[-1].token_usage is not None


def test_structured_output_is_sent_as_output_config() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with ScriptedLLMServer(['{"n": 1}']) as server:
        msg = make(server).generate(
            [ChatMessage(role="user", content="n?")],
            response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}},
        )
    text_format = server.requests[0]["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == schema
    assert json.loads(msg.text) == {"n": 1}


def test_prompt_caching_adds_cache_points() -> None:
    with ScriptedLLMServer(["ok"]) as server:
        make(server, prompt_caching=True).generate(
            [ChatMessage(role="system", content="s"), ChatMessage(role="user", content="u")], tools=TOOLS
        )
    body = server.requests[0]
    assert body["system"][-1] == {"cachePoint": {"type": "default"}}
    assert body["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}


def test_image_urls_are_refused_clearly() -> None:
    with ScriptedLLMServer(["unused"]) as server:
        with pytest.raises(ModelConfigurationError, match="bytes, not URLs"):
            make(server).generate(
                [ChatMessage(role="user", content=[{"type": "image", "url": "https://x/y.png"}])]
            )
        assert server.call_count == 0


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ModelConfigurationError, match="AWS_ACCESS_KEY_ID"):
        BedrockModel(MODEL)
