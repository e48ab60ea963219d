"""The scripted server's Anthropic Messages and Bedrock Converse wire formats, checked on the raw bytes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from codeloop.testing._wire_bedrock import encode_event
from codeloop.testing.server import Fault, ScriptedLLMServer


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


MESSAGES = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def test_anthropic_stream_follows_the_documented_event_sequence() -> None:
    reply = {
        "content": "Hello!",
        "reasoning": "hm",
        "tool_calls": [{"id": "toolu_1", "name": "f", "arguments": {"a": 1}}],
    }
    with ScriptedLLMServer([reply], chunk_size=3) as server:
        status, headers, raw = post(server.url + "/v1/messages", {**MESSAGES, "stream": True})
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = []
    for block in raw.decode().strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    assert kinds.count("content_block_stop") == 3
    delta_types = {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"}
    assert delta_types == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_stop_reason_names_the_stop_sequence() -> None:
    with ScriptedLLMServer(["abc STOP def"]) as server:
        _, _, raw = post(server.url + "/v1/messages", {**MESSAGES, "stop_sequences": ["STOP"]})
    body = json.loads(raw)
    assert body["content"] == [{"type": "text", "text": "abc "}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "STOP")


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")]
)
def test_anthropic_error_shape(status: int, kind: str) -> None:
    with ScriptedLLMServer([Fault.error(status, "nope")]) as server:
        got, _, raw = post(server.url + "/v1/messages", MESSAGES)
    assert got == status
    assert json.loads(raw) == {"type": "error", "error": {"type": kind, "message": "nope"}}


def test_bedrock_event_stream_decodes_with_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    with ScriptedLLMServer(
        [{"content": "hey there", "usage": {"input_tokens": 7, "output_tokens": 3}}]
    ) as server:
        status, headers, raw = post(
            server.url + "/model/m/converse-stream",
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        )
    assert status == 200 and headers["Content-Type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    decoded = [(m.headers[":event-type"], json.loads(m.payload)) for m in buffer]
    assert decoded[0] == ("messageStart", {"role": "assistant"})
    assert "".join(p["delta"]["text"] for name, p in decoded if name == "contentBlockDelta") == "hey there"
    assert decoded[-2] == ("messageStop", {"stopReason": "end_turn"})
    assert decoded[-1][1]["usage"]["inputTokens"] == 7


def test_bedrock_event_encoding_has_valid_checksums() -> None:
    from botocore.eventstream import EventStreamBuffer

    frame = encode_event("metadata", {"usage": {}})
    corrupted = frame[:-1] + bytes([frame[-1] ^ 0xFF])
    buffer = EventStreamBuffer()
    buffer.add_data(frame + corrupted)
    decoded = iter(buffer)
    assert next(decoded).headers[":event-type"] == "metadata"  # botocore verified both CRCs
    with pytest.raises(Exception, match="Checksum mismatch"):
        next(decoded)


def test_bedrock_errors_parse_as_aws_exceptions() -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    with ScriptedLLMServer([Fault.rate_limit(retry_after=None)]) as server:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="a",
            aws_secret_access_key="b",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as info:
            client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
