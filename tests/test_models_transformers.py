"""TransformersModel on a tiny randomly initialised Llama built in the test (CPU torch, no download)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from codeloop.errors import ModelConfigurationError
from codeloop.models.base import ChatMessage, ToolCall, collect_stream
from codeloop.models.transformers import TransformersModel, parse_tool_call_blocks
from codeloop.testing.scripted import Reply
from codeloop.testing.tiny_lm import ScriptedLogits, tiny_chat_model

torch = pytest.importorskip(
    "torch", reason="TransformersModel needs torch (dev extra installs torch==2.13.0 CPU)"
)
transformers = pytest.importorskip("transformers")

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
HI = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="hi")]


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return tiny_chat_model()


def scripted(
    tiny: tuple[Any, Any], script: list[Reply], **kw: Any
) -> tuple[TransformersModel, ScriptedLogits]:
    model, tokenizer = tiny
    forcing = ScriptedLogits(tokenizer, script)
    options: dict[str, Any] = {"do_sample": False, "max_new_tokens": 300, **kw}
    built = TransformersModel(
        "tiny-llama",
        model=model,
        tokenizer=tokenizer,
        logits_processor=transformers.LogitsProcessorList([forcing]),
        **options,
    )
    return built, forcing


def test_generates_with_the_chat_template_and_counts_tokens(tiny: tuple[Any, Any]) -> None:
    m, forcing = scripted(tiny, ["Hello from a local model."])
    msg = m.generate(HI)
    assert msg.content == "Hello from a local model."
    prompt = forcing.prompts[0]
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt
    usage = msg.token_usage
    assert usage is not None
    assert usage.input_tokens == len(
        tiny[1].apply_chat_template(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            add_generation_prompt=True,
        )["input_ids"]
    )
    assert usage.output_tokens == len("Hello from a local model.") + 1  # byte-level tokens plus end of turn


def test_tools_go_into_the_template_and_calls_come_back(tiny: tuple[Any, Any]) -> None:
    reply = {
        "content": "Checking.",
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Tokyo"}},
        ],
    }
    m, forcing = scripted(tiny, [reply])
    assert m.template_renders_tools
    msg = m.generate(HI, tools=TOOLS)
    assert msg.content == "Checking."
    assert [(c.name, c.arguments) for c in msg.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    assert '"name": "get_weather"' in forcing.prompts[0] and "# Tools" in forcing.prompts[0]


def test_template_without_tools_gets_them_in_a_system_message(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    plain = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    plain.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    forcing = ScriptedLogits(
        plain, [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    )
    m = TransformersModel(
        "tiny",
        model=model,
        tokenizer=plain,
        logits_processor=transformers.LogitsProcessorList([forcing]),
        do_sample=False,
    )
    assert not m.template_renders_tools
    msg = m.generate(HI, tools=TOOLS)
    assert msg.tool_calls[0].arguments == {"city": "Oslo"}
    assert "<tool_call>" in forcing.prompts[0] and '"get_weather"' in forcing.prompts[0]


def test_tool_history_is_rendered(tiny: tuple[Any, Any]) -> None:
    history = [
        *HI,
        ChatMessage(role="assistant", tool_calls=[ToolCall("c1", "get_weather", {"city": "Paris"})]),
        ChatMessage(role="tool", content="18C", tool_call_id="c1", name="get_weather"),
    ]
    m, forcing = scripted(tiny, ["It is 18C."])
    assert m.generate(history, tools=TOOLS).content == "It is 18C."
    assert (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in forcing.prompts[0]
    )
    assert "<|im_start|>tool\n18C<|im_end|>" in forcing.prompts[0]


def test_stop_strings_end_generation_early(tiny: tuple[Any, Any]) -> None:
    m, _ = scripted(tiny, ["x = 1\nObservation: this must never be generated"] * 2)
    msg = m.generate(HI, stop=["Observation:"])
    assert msg.content == "x = 1\n"
    assert msg.token_usage is not None and msg.token_usage.output_tokens <= len("x = 1\nObservation:")
    streamed = "".join(d.content or "" for d in m.generate_stream(HI, stop=["Observation:"]))
    assert streamed == "x = 1\n"


def test_streaming_yields_text_then_tool_calls_and_usage(tiny: tuple[Any, Any]) -> None:
    reply = {
        "content": "Let me look that up for you now.",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Lima"}}],
    }
    m, _ = scripted(tiny, [reply])
    deltas = list(m.generate_stream(HI, tools=TOOLS))
    assert len([d for d in deltas if d.content]) > 1
    assert deltas[-1].token_usage is not None
    msg = collect_stream(deltas)
    assert msg.content == "Let me look that up for you now."
    assert msg.tool_calls[0].arguments == {"city": "Lima"}
    assert "<tool_call>" not in (msg.content or "")


def test_async_twins_run_in_a_thread(tiny: tuple[Any, Any]) -> None:
    m, _ = scripted(tiny, ["async one", "async two"])

    async def main() -> tuple[str, str]:
        first = await m.agenerate(HI)
        second = collect_stream([d async for d in m.agenerate_stream(HI)])
        return first.text, second.text

    assert asyncio.run(main()) == ("async one", "async two")


def test_unsupported_features_fail_clearly(tiny: tuple[Any, Any]) -> None:
    m, forcing = scripted(tiny, ["unused"])
    assert not m.supports_response_format
    with pytest.raises(ModelConfigurationError, match="response_format"):
        m.generate(HI, response_format={"type": "json_object"})
    with pytest.raises(ModelConfigurationError, match="images"):
        m.generate([ChatMessage(role="user", content=[{"type": "image", "url": "https://x/y.png"}])])
    assert forcing.prompts == []


def test_tokenizer_without_chat_template_is_refused(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    bare = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|im_end|>")
    with pytest.raises(ModelConfigurationError, match="chat template"):
        TransformersModel("tiny", model=model, tokenizer=bare)


def test_parse_tool_call_blocks() -> None:
    prose, calls = parse_tool_call_blocks('Sure.<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>')
    assert prose == "Sure." and calls == [ToolCall("call_0", "f", {"a": 1})]
    _, broken = parse_tool_call_blocks('<tool_call>{"name": "f", "arguments": {"a": </tool_call>')
    assert broken[0].name == "f" and isinstance(broken[0].arguments, str)
    assert parse_tool_call_blocks("no calls here") == ("no calls here", [])
