"""AnthropicModel's native Messages shapes, through the `anthropic` SDK against the scripted server."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from codeloop.errors import ModelConfigurationError
from codeloop.models.anthropic import AnthropicModel, to_anthropic_messages
from codeloop.models.base import ChatMessage, ToolCall, collect_stream
from codeloop.models.pricing import estimate_cost
from codeloop.testing.server import ScriptedLLMServer

TOOLS = [
    {
        "name": "search",
        "description": "Search.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
    {
        "name": "fetch",
        "description": "Fetch.",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
    },
]


def make(server: ScriptedLLMServer, **kw: Any) -> AnthropicModel:
    return AnthropicModel("claude-sonnet-4-6", api_base=server.url, api_key="sk-ant-test", **kw)


def conversation() -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are a careful agent."),
        ChatMessage(role="user", content="Find the Pont des Arts length."),
        ChatMessage(
            role="assistant",
            content="Searching.",
            tool_calls=[ToolCall("toolu_1", "search", {"q": "Pont des Arts"})],
        ),
        ChatMessage(role="tool", content="155 m", tool_call_id="toolu_1", name="search"),
        ChatMessage(role="user", content="Now answer."),
    ]


def test_native_shapes_on_the_wire() -> None:
    with ScriptedLLMServer(["155 metres."]) as server:
        make(server).generate(conversation(), tools=TOOLS)
    body = server.requests[0]
    exchange = server.exchanges[0]
    assert exchange.path == "/v1/messages" and "anthropic-version" in exchange.headers
    # SDK releases differ in the header that carries the key (x-api-key, or a bearer token)
    assert "sk-ant-test" in exchange.headers.get("x-api-key", exchange.headers.get("authorization", ""))
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 8192
    assert body["system"][0]["text"] == "You are a careful agent."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Searching."}
    assert assistant[1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "search",
        "input": {"q": "Pont des Arts"},
    }
    # the tool result and the next user text share one user turn, tool_result first
    last = body["messages"][2]["content"]
    assert last[0]["type"] == "tool_result" and last[0]["tool_use_id"] == "toolu_1"
    assert last[0]["content"][0]["text"] == "155 m"
    assert last[1]["type"] == "text" and last[1]["text"] == "Now answer."
    assert [t["name"] for t in body["tools"]] == ["search", "fetch"]
    assert body["tools"][0]["input_schema"] == TOOLS[0]["parameters"]


def test_prompt_caching_marks_system_tools_and_conversation_end() -> None:
    with ScriptedLLMServer(["ok", "ok"]) as server:
        make(server).generate(conversation(), tools=TOOLS)
        make(server, prompt_caching=False).generate(conversation(), tools=TOOLS)
    cached, plain = server.requests
    ephemeral = {"type": "ephemeral"}
    assert cached["system"][-1]["cache_control"] == ephemeral
    assert cached["tools"][-1]["cache_control"] == ephemeral and "cache_control" not in cached["tools"][0]
    assert cached["messages"][-1]["content"][-1]["cache_control"] == ephemeral
    assert "cache_control" not in str(plain)


def test_cache_reads_and_writes_are_counted_and_priced() -> None:
    usage = {
        "input_tokens": 10_000,
        "output_tokens": 500,
        "cache_read_tokens": 8_000,
        "cache_write_tokens": 1_500,
    }
    with ScriptedLLMServer([{"content": "ok", "usage": usage}] * 2) as server:
        m = make(server)
        plain = m.generate(conversation())
        streamed = collect_stream(list(m.generate_stream(conversation())))
    for msg in (plain, streamed):
        assert msg.token_usage is not None
        assert msg.token_usage.to_dict() == {
            "input_tokens": 10_000,
            "output_tokens": 500,
            "cache_read_tokens": 8_000,
            "cache_write_tokens": 1_500,
            "reasoning_tokens": 0,
        }
    # wire shape: Anthropic counts uncached input apart
    assert plain.raw.usage.input_tokens == 500
    cost = estimate_cost("claude-sonnet-4-6", plain.token_usage)
    assert cost == pytest.approx((500 * 3 + 8_000 * 0.3 + 1_500 * 3.75 + 500 * 15) / 1e6)


def test_thinking_is_kept_out_of_the_answer_and_sent_back_signed() -> None:
    reply = {
        "content": "The answer is 4.",
        "reasoning": "2 + 2 is 4",
        "tool_calls": [{"id": "toolu_9", "name": "search", "arguments": {"q": "x"}}],
    }
    with ScriptedLLMServer([reply, reply, "done"]) as server:
        m = make(server, thinking_budget=2048)
        msg = m.generate(conversation(), tools=TOOLS)
        streamed = collect_stream(list(m.generate_stream(conversation(), tools=TOOLS)))
        follow_up = [*conversation(), msg, ChatMessage(role="tool", content="x", tool_call_id="toolu_9")]
        m.generate(follow_up, tools=TOOLS)
    assert msg.content == "The answer is 4." and msg.reasoning == "2 + 2 is 4"
    assert streamed.content == "The answer is 4." and streamed.reasoning == "2 + 2 is 4"
    assert server.requests[0]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    resent = server.requests[2]["messages"][3]["content"]
    assert resent[0] == {"type": "thinking", "thinking": "2 + 2 is 4", "signature": "scripted-signature"}


def test_images_as_base64_and_url_sources() -> None:
    png = base64.b64encode(b"png bytes").decode()
    content = [
        {"type": "text", "text": "Compare."},
        {"type": "image", "data": png, "mime_type": "image/png"},
        {"type": "image", "url": "https://example.com/a.jpg"},
    ]
    system, turns = to_anthropic_messages([ChatMessage(role="user", content=content)])
    assert system == []
    blocks = turns[0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": png},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}


def test_stop_sequences_are_sent_and_whitespace_ones_trimmed_locally() -> None:
    with ScriptedLLMServer(["print(1)\n\nObservation: x"], honor_stop=False) as server:
        msg = make(server).generate(conversation(), stop=["Observation:", "\n\n"])
    assert server.requests[0]["stop_sequences"] == ["Observation:"]
    assert msg.content == "print(1)"


def test_response_format_becomes_output_config() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    with ScriptedLLMServer(['{"n": 3}']) as server:
        make(server).generate(
            conversation(),
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        )
    assert server.requests[0]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ModelConfigurationError, match="ANTHROPIC_API_KEY"):
        AnthropicModel("claude-sonnet-4-6")


def test_streamed_tool_calls_numbered_in_order() -> None:
    reply = {
        "content": "Two lookups.",
        "tool_calls": [
            {"id": "toolu_a", "name": "search", "arguments": {"q": "a"}},
            {"id": "toolu_b", "name": "fetch", "arguments": {"url": "https://b"}},
        ],
    }
    with ScriptedLLMServer([reply], chunk_size=3) as server:
        deltas = list(make(server).generate_stream(conversation(), tools=TOOLS))
    fragments = [f for d in deltas for f in d.tool_calls]
    assert [f.index for f in fragments if f.id] == [0, 1]
    assert collect_stream(deltas).tool_calls == [
        ToolCall("toolu_a", "search", {"q": "a"}),
        ToolCall("toolu_b", "fetch", {"url": "https://b"}),
    ]
