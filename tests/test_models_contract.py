"""The same contract checked on every network adapter, each through its official SDK against the scripted server.

openai / azure / groq (an OpenAI-compatible shortcut) use the `openai` SDK, anthropic the `anthropic` SDK,
hf `huggingface_hub`, litellm `litellm` (both its OpenAI and its Anthropic routes), bedrock `boto3`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from codeloop.errors import AgentGenerationError
from codeloop.models.base import ChatMessage, Model, ToolCall, collect_stream
from codeloop.models.structured import code_action_response_format, parse_code_action
from codeloop.testing.faults import Fault
from codeloop.testing.scripted import ScriptRequest
from codeloop.testing.server import ScriptedLLMServer

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # boto3 must never probe instance metadata here

AWS = {"aws_access_key_id": "AKIATEST", "aws_secret_access_key": "secret"}
FAST: dict[str, Any] = {"retry_base_delay": 0.01, "max_retries": 2}


def _openai(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.openai import OpenAIModel

    return OpenAIModel("gpt-4o", api_base=s.base_url, api_key="k", **kw)


def _azure(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.azure import AzureOpenAIModel

    return AzureOpenAIModel("my-gpt-4o-deployment", azure_endpoint=s.url, api_key="k", **kw)


def _groq(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.compatible import GroqModel

    return GroqModel("llama-3.3-70b-versatile", api_base=s.base_url, **kw)


def _anthropic(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.anthropic import AnthropicModel

    return AnthropicModel("claude-sonnet-4-6", api_base=s.url, api_key="k", **kw)


def _hf(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.hf import InferenceClientModel

    return InferenceClientModel("Qwen/Qwen2.5-Coder-32B-Instruct", api_base=s.url, token="k", **kw)


def _litellm(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.litellm import LiteLLMModel

    return LiteLLMModel("openai/gpt-4o", api_base=s.base_url, api_key="k", **kw)


def _litellm_anthropic(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.litellm import LiteLLMModel

    return LiteLLMModel("anthropic/claude-sonnet-4-6", api_base=s.url, api_key="k", **kw)


def _bedrock(s: ScriptedLLMServer, **kw: Any) -> Model:
    from codeloop.models.bedrock import BedrockModel

    return BedrockModel(
        "anthropic.claude-3-5-sonnet-20240620-v1:0", endpoint_url=s.url, client_kwargs=AWS, **kw
    )


ADAPTERS: dict[str, Callable[..., Model]] = {
    "openai": _openai,
    "azure": _azure,
    "groq": _groq,
    "anthropic": _anthropic,
    "hf": _hf,
    "litellm": _litellm,
    "litellm-anthropic": _litellm_anthropic,
    "bedrock": _bedrock,
}
# Wires whose usage object carries reasoning tokens (Chat Completions' completion_tokens_details).
REPORTS_REASONING_TOKENS = {"openai", "azure", "groq", "hf", "litellm"}
# Wires whose non-streamed tool input is raw JSON text (Anthropic and Converse send an object).
RAW_ARGUMENTS_WHEN_NOT_STREAMING = {"openai", "azure", "groq", "hf", "litellm"}

USER = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content="Weather in Paris and Tokyo?"),
]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
TWO_CALLS = {
    "content": "Checking both cities.",
    "tool_calls": [
        {"id": "call_paris", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_tokyo", "name": "get_weather", "arguments": {"city": "Tokyo"}},
    ],
    "usage": {"input_tokens": 200, "output_tokens": 40, "cache_read_tokens": 150, "reasoning_tokens": 9},
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> tuple[str, Callable[..., Model]]:
    return request.param, ADAPTERS[request.param]


def test_text_reply_with_usage(adapter: tuple[str, Callable[..., Model]]) -> None:
    name, make = adapter
    with ScriptedLLMServer([TWO_CALLS]) as server:
        msg = make(server, **FAST).generate(USER, tools=TOOLS)
    assert msg.content == "Checking both cities."
    usage = msg.token_usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (200, 40, 150)
    if name in REPORTS_REASONING_TOKENS:
        assert usage.reasoning_tokens == 9


def test_several_tool_calls_in_one_reply(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    with ScriptedLLMServer([TWO_CALLS, TWO_CALLS]) as server:
        m = make(server, **FAST)
        plain = m.generate(USER, tools=TOOLS)
        streamed = collect_stream(list(m.generate_stream(USER, tools=TOOLS)))
    expected = [
        ToolCall("call_paris", "get_weather", {"city": "Paris"}),
        ToolCall("call_tokyo", "get_weather", {"city": "Tokyo"}),
    ]
    assert plain.tool_calls == expected
    assert streamed.tool_calls == expected
    assert streamed.content == "Checking both cities."


def test_stream_is_chunked_with_usage_on_the_last_delta(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    text = "A leopard runs about 58 km/h, so the bridge takes roughly ten seconds."
    with ScriptedLLMServer([{"content": text, "usage": {"input_tokens": 50, "output_tokens": 17}}]) as server:
        deltas = list(make(server, **FAST).generate_stream(USER))
    contents = [d.content for d in deltas if d.content]
    assert len(contents) >= 5
    assert "".join(contents) == text
    assert [d.token_usage is not None for d in deltas].count(True) == 1
    last = deltas[-1].token_usage
    assert last is not None and (last.input_tokens, last.output_tokens) == (50, 17)


def test_tool_results_travel_as_native_tool_messages(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    history = [
        *USER,
        ChatMessage(
            role="assistant",
            content="Checking.",
            tool_calls=[
                ToolCall("call_paris", "get_weather", {"city": "Paris"}),
                ToolCall("call_tokyo", "get_weather", {"city": "Tokyo"}),
            ],
        ),
        ChatMessage(role="tool", content="18C, sunny", tool_call_id="call_paris", name="get_weather"),
        ChatMessage(role="tool", content="24C, humid", tool_call_id="call_tokyo", name="get_weather"),
    ]
    seen: list[ScriptRequest] = []

    def script(request: ScriptRequest) -> str:
        seen.append(request)
        return "Paris 18C, Tokyo 24C."

    with ScriptedLLMServer(script) as server:
        assert make(server, **FAST).generate(history, tools=TOOLS).content == "Paris 18C, Tokyo 24C."
    messages = seen[0].messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [c.id for c in messages[2].tool_calls] == ["call_paris", "call_tokyo"]
    assert messages[2].tool_calls[0].arguments == {"city": "Paris"}
    assert [(m.tool_call_id, m.text) for m in messages[3:]] == [
        ("call_paris", "18C, sunny"),
        ("call_tokyo", "24C, humid"),
    ]
    assert seen[0].tools == TOOLS


def test_images_reach_the_server(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()
    content = [
        {"type": "text", "text": "Describe this."},
        {"type": "image", "data": png, "mime_type": "image/png"},
    ]
    seen: list[ScriptRequest] = []
    with ScriptedLLMServer(lambda r: seen.append(r) or "A small image.") as server:
        assert (
            make(server, **FAST).generate([ChatMessage(role="user", content=content)]).content
            == "A small image."
        )
    parts = seen[0].messages[-1].content
    assert isinstance(parts, list)
    assert parts[0] == {"type": "text", "text": "Describe this."}
    assert parts[1]["type"] == "image" and parts[1]["data"] == png and parts[1]["mime_type"] == "image/png"


@pytest.mark.parametrize("server_honors_stop", [True, False])
def test_stop_sequences(adapter: tuple[str, Callable[..., Model]], server_honors_stop: bool) -> None:
    _, make = adapter
    reply = "x = 2 + 2\nprint(x)\nObservation: made up"
    with ScriptedLLMServer([reply, reply], honor_stop=server_honors_stop) as server:
        m = make(server, **FAST)
        assert m.generate(USER, stop=["Observation:"]).content == "x = 2 + 2\nprint(x)\n"
        streamed = "".join(d.content or "" for d in m.generate_stream(USER, stop=["Observation:"]))
    assert streamed == "x = 2 + 2\nprint(x)\n"


def test_structured_output_sends_the_schema(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    seen: list[ScriptRequest] = []

    def script(request: ScriptRequest) -> str:
        seen.append(request)
        return json.dumps({"thought": "add", "code": "final_answer(2 + 2)"})

    with ScriptedLLMServer(script) as server:
        msg = make(server, **FAST).generate(USER, response_format=code_action_response_format())
    assert parse_code_action(msg.text) == ("add", "final_answer(2 + 2)")
    sent = seen[0].response_format
    assert sent is not None and sent["json_schema"]["schema"]["required"] == ["thought", "code"]


def test_async_twins(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter

    async def main() -> tuple[ChatMessage, ChatMessage]:
        with ScriptedLLMServer([TWO_CALLS, TWO_CALLS]) as server:
            m = make(server, **FAST)
            plain = await m.agenerate(USER, tools=TOOLS)
            streamed = collect_stream([d async for d in m.agenerate_stream(USER, tools=TOOLS)])
            return plain, streamed

    plain, streamed = asyncio.run(main())
    assert plain.content == streamed.content == "Checking both cities."
    assert (
        [c.id for c in plain.tool_calls]
        == [c.id for c in streamed.tool_calls]
        == ["call_paris", "call_tokyo"]
    )
    assert streamed.token_usage is not None and streamed.token_usage.output_tokens == 40


def test_invalid_tool_call_arguments_stay_raw(adapter: tuple[str, Callable[..., Model]]) -> None:
    name, make = adapter
    bad = '{"city": "Paris"'
    reply = {"tool_calls": [{"id": "call_bad", "name": "get_weather", "arguments": bad}]}
    with ScriptedLLMServer([reply, reply]) as server:
        m = make(server, **FAST)
        streamed = collect_stream(list(m.generate_stream(USER, tools=TOOLS)))
        plain = m.generate(USER, tools=TOOLS)
    assert streamed.tool_calls[0].name == "get_weather"
    assert streamed.tool_calls[0].arguments == bad
    if name in RAW_ARGUMENTS_WHEN_NOT_STREAMING:
        assert plain.tool_calls[0].arguments == bad


# -- reliability --------------------------------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    with ScriptedLLMServer([Fault.rate_limit(retry_after=0.25), "recovered"]) as server:
        started = time.monotonic()
        assert make(server, **FAST).generate(USER).content == "recovered"
        assert time.monotonic() - started >= 0.25
        assert server.call_count == 2


def test_server_errors_end_in_generation_error_naming_provider_and_status(
    adapter: tuple[str, Callable[..., Model]],
) -> None:
    _, make = adapter
    with ScriptedLLMServer([Fault.server_error(503, "backend overloaded")] * 4) as server:
        m = make(server, **FAST)
        with pytest.raises(AgentGenerationError) as info:
            m.generate(USER)
        assert server.call_count == 3
    err = info.value
    assert err.provider == m.provider
    assert err.status == 503
    assert "backend overloaded" in str(err) and "HTTP 503" in str(err)


def test_client_errors_are_not_retried_and_surface_verbatim(
    adapter: tuple[str, Callable[..., Model]],
) -> None:
    _, make = adapter
    message = "model 'no-such-model' does not exist"
    with ScriptedLLMServer([Fault.error(404, message), "unused"]) as server:
        with pytest.raises(AgentGenerationError) as info:
            make(server, **FAST).generate(USER)
        assert server.call_count == 1
    assert info.value.status == 404 and message in (info.value.provider_message or "")


def test_hanging_server_times_out(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    # the timeout also bounds the retried call, which must be answered within it on a busy machine: 2 s
    with ScriptedLLMServer([Fault.hang(20), "after the hang"]) as server:
        assert make(server, timeout=2, **FAST).generate(USER).content == "after the hang"
        assert server.call_count == 2


def test_stream_cut_midway_is_reported(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    text = "This answer is long enough to be cut in the middle of the stream."
    with ScriptedLLMServer([Fault.cut(text, after_chunks=6), "unused"]) as server:
        received = ""
        with pytest.raises(AgentGenerationError, match="stream was cut after") as info:
            for delta in make(server, **FAST).generate_stream(USER):
                received += delta.content or ""
        assert server.call_count == 1
    assert received and text.startswith(received) and received != text
    assert info.value.partial_output == received  # the part that arrived travels with the error


def test_stream_cut_before_any_content_is_retried(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    with ScriptedLLMServer([Fault.cut("lost", after_chunks=1), "complete"]) as server:
        assert "".join(d.content or "" for d in make(server, **FAST).generate_stream(USER)) == "complete"
        assert server.call_count == 2


def test_malformed_json_is_retried(adapter: tuple[str, Callable[..., Model]]) -> None:
    _, make = adapter
    with ScriptedLLMServer([Fault.malformed_json(), "fine"]) as server:
        assert make(server, **FAST).generate(USER).content == "fine"
        assert server.call_count == 2


def test_text_no_encoder_accepts_is_sent_with_replacement(adapter: tuple[str, Callable[..., Model]]) -> None:
    # Agent code printed a lone surrogate; the observation holding it goes back to the model.
    _, make = adapter
    messages = [
        ChatMessage(role="user", content="Run it."),
        ChatMessage(role="assistant", content="```python\nprint(x)\n```"),
        ChatMessage(role="user", content="Observation:\nbad \udcff byte"),
    ]
    with ScriptedLLMServer(["fine"]) as server:
        assert make(server, **FAST).generate(messages).content == "fine"
        body = json.dumps(server.requests[0])
    assert "bad ? byte" in body
