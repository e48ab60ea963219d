"""OpenAIModel through the real `openai` SDK against the scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from codeloop.errors import AgentGenerationError, ModelConfigurationError
from codeloop.models import model as model_from_spec
from codeloop.models.base import ChatMessage, ToolCall, collect_stream
from codeloop.models.openai import OpenAIModel, rejects_stop
from codeloop.testing.faults import Fault
from codeloop.testing.scripted import ScriptRequest
from codeloop.testing.server import ScriptedLLMServer

USER = [ChatMessage(role="system", content="You are terse."), ChatMessage(role="user", content="hi")]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
FAST = {"retry_base_delay": 0.01, "max_retries": 2}


def make(server: ScriptedLLMServer, model_id: str = "gpt-4o", **kwargs: object) -> OpenAIModel:
    return OpenAIModel(model_id, api_base=server.base_url, api_key="test-key", **{**FAST, **kwargs})


def test_generate_returns_text_and_full_usage() -> None:
    usage = {"input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 100, "reasoning_tokens": 12}
    with ScriptedLLMServer([{"content": "Paris.", "usage": usage}]) as server:
        reply = make(server).generate(USER)
    assert reply.role == "assistant"
    assert reply.content == "Paris."
    assert reply.token_usage is not None
    assert reply.token_usage.to_dict() == {
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 100,
        "cache_write_tokens": 0,
        "reasoning_tokens": 12,
    }
    body = server.requests[0]
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]
    assert "stream" not in body
    assert server.exchanges[0].headers["authorization"] == "Bearer test-key"


def test_generate_kwargs_are_sent_with_every_request() -> None:
    with ScriptedLLMServer(["a", "b"]) as server:
        m = make(server, temperature=0.2, max_tokens=64)
        m.generate(USER)
        m.generate(USER)
    for body in server.requests:
        assert body["temperature"] == 0.2 and body["max_tokens"] == 64


def test_tool_choice_is_sent_only_with_tools() -> None:
    # llama-cpp-python's chatml-function-calling returns native calls only when tool_choice="auto" comes along;
    # OpenAI answers 400 to a tool_choice without tools, e.g. a CodeAgent step on the same model object.
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    with ScriptedLLMServer(["plain", {"tool_calls": [call]}]) as server:
        m = make(server, tool_choice="auto", max_retries=0)
        assert m.generate(USER).content == "plain"
        assert m.generate(USER, tools=TOOLS).tool_calls[0].arguments == {"city": "Oslo"}
    assert "tool_choice" not in server.requests[0]
    assert server.requests[1]["tool_choice"] == "auto"


def test_stream_delivers_text_in_several_chunks_and_usage_last() -> None:
    text = "The leopard runs at 58 km/h across the bridge."
    with ScriptedLLMServer([{"content": text, "usage": {"input_tokens": 40, "output_tokens": 11}}]) as server:
        deltas = list(make(server).generate_stream(USER))
    contents = [d.content for d in deltas if d.content]
    assert len(contents) >= 5
    assert "".join(contents) == text
    assert deltas[-1].token_usage is not None
    assert deltas[-1].token_usage.input_tokens == 40 and deltas[-1].token_usage.output_tokens == 11
    assert all(d.token_usage is None for d in deltas[:-1])
    body = server.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_several_tool_calls_in_one_reply() -> None:
    reply = {
        "content": None,
        "tool_calls": [
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "call_b", "name": "get_weather", "arguments": {"city": "Tokyo"}},
        ],
    }
    with ScriptedLLMServer([reply]) as server:
        msg = make(server).generate(USER, tools=TOOLS)
    assert msg.tool_calls == [
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_weather", {"city": "Tokyo"}),
    ]
    assert server.requests[0]["tools"] == [{"type": "function", "function": TOOLS[0]}]


def test_streamed_tool_calls_arrive_as_indexed_fragments() -> None:
    reply = {
        "content": "Checking both.",
        "tool_calls": [
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris, France"}},
            {"id": "call_b", "name": "get_weather", "arguments": {"city": "Tokyo, Japan"}},
        ],
    }
    with ScriptedLLMServer([reply], chunk_size=4) as server:
        deltas = list(make(server).generate_stream(USER, tools=TOOLS))
    fragments = [tc for d in deltas for tc in d.tool_calls]
    assert {f.index for f in fragments} == {0, 1}
    assert len(fragments) > 4  # arguments came in pieces, not whole
    assert [f.id for f in fragments if f.id] == ["call_a", "call_b"]
    msg = collect_stream(deltas)
    assert msg.content == "Checking both."
    assert [(c.id, c.arguments) for c in msg.tool_calls] == [
        ("call_a", {"city": "Paris, France"}),
        ("call_b", {"city": "Tokyo, Japan"}),
    ]
    assert msg.token_usage is not None


def test_invalid_tool_call_json_is_kept_as_raw_string() -> None:
    bad = '{"city": "Paris"'
    reply = {"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": bad}]}
    with ScriptedLLMServer([reply, reply]) as server:
        m = make(server)
        assert m.generate(USER, tools=TOOLS).tool_calls[0].arguments == bad
        assert collect_stream(list(m.generate_stream(USER, tools=TOOLS))).tool_calls[0].arguments == bad


def test_tool_results_go_back_as_tool_messages_with_call_ids() -> None:
    history = [
        *USER,
        ChatMessage(
            role="assistant",
            content=None,
            tool_calls=[
                ToolCall("call_a", "get_weather", {"city": "Paris"}),
                ToolCall("call_b", "get_weather", {}),
            ],
        ),
        ChatMessage(role="tool", content="18C", tool_call_id="call_a", name="get_weather"),
        ChatMessage(role="tool", content="error: city missing", tool_call_id="call_b", name="get_weather"),
    ]
    seen: list[ScriptRequest] = []

    def script(request: ScriptRequest) -> str:
        seen.append(request)
        return "Paris is 18C."

    with ScriptedLLMServer(script) as server:
        assert make(server).generate(history, tools=TOOLS).content == "Paris is 18C."
    wire = server.requests[0]["messages"]
    assert wire[2]["role"] == "assistant"
    # a string, not null: llama-cpp-python's server rejects the whole request (HTTP 500) on null content
    assert wire[2]["content"] == ""
    assert [c["function"]["arguments"] for c in wire[2]["tool_calls"]] == ['{"city": "Paris"}', "{}"]
    assert wire[3] == {"role": "tool", "tool_call_id": "call_a", "content": "18C"}
    assert wire[4] == {"role": "tool", "tool_call_id": "call_b", "content": "error: city missing"}
    # the script function sees neutral messages again
    assert seen[0].messages[2].tool_calls[0] == ToolCall("call_a", "get_weather", {"city": "Paris"})
    assert seen[0].messages[3].role == "tool" and seen[0].messages[3].tool_call_id == "call_a"
    assert seen[0].tools == TOOLS


def test_images_are_sent_as_image_url_parts() -> None:
    png = base64.b64encode(b"\x89PNG fake bytes").decode()
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "data": png, "mime_type": "image/png"},
        {"type": "image", "url": "https://example.com/cat.jpg"},
    ]
    seen: list[ScriptRequest] = []
    with ScriptedLLMServer(lambda r: seen.append(r) or "A cat.") as server:
        make(server).generate([ChatMessage(role="user", content=content)])
    parts = server.requests[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is in these?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert seen[0].messages[0].content == content


def test_images_returned_by_a_tool_follow_the_tool_messages() -> None:
    png = base64.b64encode(b"img").decode()
    history = [
        ChatMessage(role="user", content="screenshot please"),
        ChatMessage(role="assistant", tool_calls=[ToolCall("c1", "screenshot", {})]),
        ChatMessage(
            role="tool",
            tool_call_id="c1",
            content=[
                {"type": "text", "text": "done"},
                {"type": "image", "data": png, "mime_type": "image/png"},
            ],
        ),
    ]
    with ScriptedLLMServer(["ok"]) as server:
        make(server).generate(history)
    wire = server.requests[0]["messages"]
    assert wire[2] == {"role": "tool", "tool_call_id": "c1", "content": "done"}
    assert wire[3]["role"] == "user"
    assert wire[3]["content"][0]["image_url"]["url"].endswith(png)


def test_stop_is_sent_to_models_that_accept_it() -> None:
    with ScriptedLLMServer(["x = 1\n<end_code>\nObservation: never"]) as server:
        msg = make(server).generate(USER, stop=["<end_code>"])
    assert server.requests[0]["stop"] == ["<end_code>"]
    assert msg.content == "x = 1\n"


@pytest.mark.parametrize("model_id", ["o3-mini", "o1", "gpt-5", "openai/o4-mini"])
def test_reasoning_models_get_no_stop_and_are_trimmed_client_side(model_id: str) -> None:
    reply = "print(42)\n<end_code>\nObservation: invented"
    with ScriptedLLMServer([reply, reply], reject_stop_models=[model_id]) as server:
        m = make(server, model_id=model_id)
        assert m.generate(USER, stop=["<end_code>"]).content == "print(42)\n"
        streamed = "".join(d.content or "" for d in m.generate_stream(USER, stop=["<end_code>"]))
    assert streamed == "print(42)\n"
    assert all("stop" not in body for body in server.requests)


def test_server_rejects_stop_for_reasoning_models_like_openai() -> None:
    # Guards the test above: if the adapter sent `stop`, the server would refuse.
    with ScriptedLLMServer(["x"], reject_stop_models=["o3"]) as server:
        with pytest.raises(AgentGenerationError) as info:
            make(server, model_id="o3", supports_stop=True).generate(USER, stop=["Observation:"])
    assert info.value.status == 400 and "'stop' is not supported" in str(info.value)


def test_rejects_stop_knows_the_reasoning_families() -> None:
    assert rejects_stop("o1-preview") and rejects_stop("o3") and rejects_stop("gpt-5-mini")
    assert (
        not rejects_stop("gpt-4o")
        and not rejects_stop("gpt-4.1-mini")
        and not rejects_stop("omni-moderation")
    )


def test_stop_split_across_chunks_is_still_found_when_streaming() -> None:
    with ScriptedLLMServer(["abc<end_code>tail"], chunk_size=2, honor_stop=False) as server:
        deltas = list(make(server, supports_stop=False).generate_stream(USER, stop=["<end_code>"]))
    assert "".join(d.content or "" for d in deltas) == "abc"
    assert deltas[-1].token_usage is not None


def test_response_format_is_passed_through() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"value": {"type": "integer"}},
                "required": ["value"],
                "additionalProperties": False,
            },
        },
    }
    with ScriptedLLMServer(['{"value": 7}']) as server:
        msg = make(server).generate(USER, response_format=fmt)
    assert json.loads(msg.text) == {"value": 7}
    assert server.requests[0]["response_format"] == fmt


def test_reasoning_content_is_kept_out_of_the_answer() -> None:
    with ScriptedLLMServer([{"content": "42", "reasoning": "6 times 7"}] * 2) as server:
        m = make(server, model_id="deepseek-reasoner")
        msg = m.generate(USER)
        streamed = collect_stream(list(m.generate_stream(USER)))
    assert (msg.content, msg.reasoning) == ("42", "6 times 7")
    assert (streamed.content, streamed.reasoning) == ("42", "6 times 7")


def test_async_twins() -> None:
    reply = {
        "content": "hello async world",
        "tool_calls": [{"id": "c", "name": "get_weather", "arguments": {}}],
    }

    async def main() -> tuple[ChatMessage, list]:
        with ScriptedLLMServer([reply, reply]) as server:
            m = make(server)
            msg = await m.agenerate(USER, tools=TOOLS)
            deltas = [d async for d in m.agenerate_stream(USER, tools=TOOLS)]
            return msg, deltas

    msg, deltas = asyncio.run(main())
    assert msg.content == "hello async world" and msg.tool_calls[0].name == "get_weather"
    assert len([d for d in deltas if d.content]) > 1
    assert collect_stream(deltas).tool_calls[0].id == "c"
    assert deltas[-1].token_usage is not None


def test_async_client_survives_a_second_event_loop() -> None:
    with ScriptedLLMServer(["one", "two"]) as server:
        m = make(server)
        assert asyncio.run(m.agenerate(USER)).content == "one"
        assert asyncio.run(m.agenerate(USER)).content == "two"


# -- errors and reliability ---------------------------------------------------------------------------------------


def test_missing_api_key_names_the_variable_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelConfigurationError, match="OPENAI_API_KEY"):
        OpenAIModel("gpt-4o")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        model_from_spec("openai:gpt-4o")


def test_environment_key_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with ScriptedLLMServer(["ok"]) as server:
        OpenAIModel("gpt-4o", api_base=server.base_url).generate(USER)
    assert server.exchanges[0].headers["authorization"] == "Bearer sk-from-env"


def test_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedLLMServer(["ok"]) as server:
        assert OpenAIModel("llama3", api_base=server.base_url).generate(USER).content == "ok"


def test_unknown_model_error_is_surfaced_verbatim_without_retry() -> None:
    message = "The model `gpt-9` does not exist or you do not have access to it."
    with ScriptedLLMServer([Fault.error(404, message, "invalid_request_error"), "unused"]) as server:
        with pytest.raises(AgentGenerationError) as info:
            make(server, model_id="gpt-9").generate(USER)
        assert server.call_count == 1
    err = info.value
    assert (err.provider, err.status, err.provider_message) == ("openai", 404, message)
    assert message in str(err) and "HTTP 404" in str(err)


def test_rate_limit_is_retried_after_retry_after() -> None:
    with ScriptedLLMServer([Fault.rate_limit(retry_after=0.3), "finally"]) as server:
        started = time.monotonic()
        assert make(server).generate(USER).content == "finally"
        waited = time.monotonic() - started
    assert server.call_count == 2
    assert waited >= 0.3


def test_each_retry_is_a_logging_record_saying_why_and_how_long(caplog: pytest.LogCaptureFixture) -> None:
    from codeloop.models.reliability import RetryNotice

    with caplog.at_level("WARNING", logger="codeloop.models"):
        with ScriptedLLMServer([Fault.rate_limit(retry_after=1), Fault.server_error(503), "ok"]) as server:
            assert make(server, max_retries=3).generate(USER).content == "ok"
    notices = [r.retry for r in caplog.records if hasattr(r, "retry")]
    assert [type(n) for n in notices] == [RetryNotice, RetryNotice]
    assert [(n.retry_number, n.status) for n in notices] == [(1, 429), (2, 503)]
    assert caplog.records[0].levelname == "WARNING"
    assert caplog.records[0].getMessage().startswith("openai model 'gpt-4o': retrying in 1 s: HTTP 429: ")
    assert caplog.records[0].getMessage().endswith("(retry 1 of 3)")


def test_server_errors_exhaust_retries_then_name_provider_and_status() -> None:
    with ScriptedLLMServer([Fault.server_error(503, "overloaded")] * 5) as server:
        with pytest.raises(AgentGenerationError) as info:
            make(server, max_retries=2).generate(USER)
        assert server.call_count == 3
    assert info.value.status == 503 and "overloaded" in str(info.value) and "3 attempts" in str(info.value)


def test_deadline_stops_retries_early() -> None:
    with ScriptedLLMServer([Fault.rate_limit(retry_after=5)] * 3) as server:
        with pytest.raises(AgentGenerationError, match="HTTP 429"):
            make(server, max_retries=5, retry_deadline_s=1.0).generate(USER)
        assert server.call_count == 1


def test_hanging_response_times_out_and_is_retried() -> None:
    # the timeout also bounds the retried call, which must be answered within it on a busy machine: 2 s
    with ScriptedLLMServer([Fault.hang(10), "after the hang"]) as server:
        assert make(server, timeout=2).generate(USER).content == "after the hang"
        assert server.call_count == 2


def test_hanging_response_ends_in_generation_error() -> None:
    with ScriptedLLMServer([Fault.hang(10)] * 2) as server:
        with pytest.raises(AgentGenerationError, match="no response"):
            make(server, timeout=0.3, max_retries=1).generate(USER)


def test_stream_cut_midway_is_reported_not_truncated() -> None:
    with ScriptedLLMServer([Fault.cut("a long answer that never ends", after_chunks=3), "unused"]) as server:
        received: list[str] = []
        with pytest.raises(AgentGenerationError, match="stream was cut after"):
            for delta in make(server).generate_stream(USER):
                received.append(delta.content or "")
        assert server.call_count == 1
    assert "".join(received) and "a long answer that never ends".startswith("".join(received))


def test_stream_cut_before_any_content_is_retried() -> None:
    with ScriptedLLMServer([Fault.cut("lost", after_chunks=1), "complete reply"]) as server:
        text = "".join(d.content or "" for d in make(server).generate_stream(USER))
    assert text == "complete reply"
    assert server.call_count == 2


def test_cut_non_streaming_response_is_retried() -> None:
    with ScriptedLLMServer([Fault.cut("half"), "whole"]) as server:
        assert make(server).generate(USER).content == "whole"


def test_malformed_json_is_retried_then_reported() -> None:
    with ScriptedLLMServer([Fault.malformed_json(), "fine"]) as server:
        assert make(server).generate(USER).content == "fine"
    with ScriptedLLMServer([Fault.malformed_json()] * 3) as server:
        with pytest.raises(AgentGenerationError, match="malformed response"):
            make(server).generate(USER)


def test_async_retries_too() -> None:
    async def main() -> str:
        with ScriptedLLMServer([Fault.server_error(502), "async ok"]) as server:
            return (await make(server).agenerate(USER)).text

    assert asyncio.run(main()) == "async ok"


def test_requests_per_minute_spaces_requests() -> None:
    with ScriptedLLMServer(["a", "b", "c"]) as server:
        m = make(server, requests_per_minute=600)  # one every 0.1 s
        started = time.monotonic()
        for _ in range(3):
            m.generate(USER)
        assert time.monotonic() - started >= 0.2


# -- factory --------------------------------------------------------------------------------------------------------


def test_factory_builds_openai_and_compatible_models() -> None:
    with ScriptedLLMServer(["via factory", "via ollama"]) as server:
        m = model_from_spec("openai:gpt-4o-mini", api_base=server.base_url, api_key="k")
        assert isinstance(m, OpenAIModel) and m.model_id == "gpt-4o-mini"
        assert m.generate(USER).content == "via factory"
        ollama = model_from_spec("ollama:qwen2.5-coder:7b", api_base=server.base_url)
        assert ollama.model_id == "qwen2.5-coder:7b"
        assert ollama.generate(USER).content == "via ollama"
    assert [b["model"] for b in server.requests] == ["gpt-4o-mini", "qwen2.5-coder:7b"]


def test_factory_rejects_unknown_provider_listing_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model provider 'nope'.*openai"):
        model_from_spec("nope:some-model")
    with pytest.raises(ValueError, match="provider:model_id"):
        model_from_spec("gpt-4o")


def test_generation_error_propagates_programming_errors_unchanged() -> None:
    with ScriptedLLMServer(["x"]) as server:
        with pytest.raises(KeyError):
            make(server).generate(
                [ChatMessage(role="user", content="hi")], tools=[{"description": "no name"}]
            )
