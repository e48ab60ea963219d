"""FallbackModel: the next model answers when one fails after its retries."""

from __future__ import annotations

import asyncio

import pytest

from codeloop.errors import AgentGenerationError, ModelConfigurationError
from codeloop.models.base import ChatMessage, collect_stream
from codeloop.models.fallback import FallbackModel
from codeloop.models.openai import OpenAIModel
from codeloop.testing.faults import Fault
from codeloop.testing.server import ScriptedLLMServer

HI = [ChatMessage(role="user", content="hi")]


def make(server: ScriptedLLMServer, model_id: str) -> OpenAIModel:
    return OpenAIModel(model_id, api_base=server.base_url, api_key="k", max_retries=1, retry_base_delay=0.01)


def test_next_model_answers_after_the_first_exhausts_its_retries() -> None:
    with (
        ScriptedLLMServer([Fault.server_error(500)] * 4) as bad,
        ScriptedLLMServer(["from backup", "again"]) as good,
    ):
        fallback = FallbackModel([make(bad, "gpt-4o"), make(good, "gpt-4o-mini")])
        assert fallback.generate(HI).content == "from backup"
        assert bad.call_count == 2  # its own retry happened first
        assert fallback.model_id == "gpt-4o-mini" and fallback.provider == "openai"
        assert asyncio.run(fallback.agenerate(HI)).content == "again"


def test_streams_fall_back_before_the_first_delta() -> None:
    with ScriptedLLMServer([Fault.rate_limit(0)] * 4) as bad, ScriptedLLMServer(["streamed backup"]) as good:
        fallback = FallbackModel([make(bad, "a"), make(good, "b")])
        assert collect_stream(list(fallback.generate_stream(HI))).content == "streamed backup"


def test_a_stream_broken_midway_is_reported_not_switched() -> None:
    long_text = "partial reply that will be cut off in the middle"
    with (
        ScriptedLLMServer([Fault.cut(long_text, after_chunks=5)]) as bad,
        ScriptedLLMServer(["unused"]) as good,
    ):
        fallback = FallbackModel([make(bad, "a"), make(good, "b")])
        with pytest.raises(AgentGenerationError, match="stream was cut"):
            list(fallback.generate_stream(HI))
        assert good.call_count == 0


def test_all_failing_names_every_model() -> None:
    with (
        ScriptedLLMServer([Fault.error(401, "bad key A")] * 2) as a,
        ScriptedLLMServer([Fault.error(404, "no model B")] * 2) as b,
    ):
        with pytest.raises(AgentGenerationError) as info:
            FallbackModel([make(a, "model-a"), make(b, "model-b")]).generate(HI)
    assert "model-a" in str(info.value) and "bad key A" in str(info.value) and "no model B" in str(info.value)
    assert info.value.status == 404


def test_configuration_errors_are_not_papered_over() -> None:
    class Misconfigured:
        model_id = "broken"

        def generate(self, messages: list[ChatMessage], **options: object) -> ChatMessage:
            raise ModelConfigurationError("no key")

    with ScriptedLLMServer(["unused"]) as good:
        with pytest.raises(ModelConfigurationError):
            FallbackModel([Misconfigured(), make(good, "b")]).generate(HI)  # type: ignore[list-item]
        assert good.call_count == 0


def test_specs_and_empty_list() -> None:
    from codeloop.models.compatible import OllamaModel, VLLMModel

    fallback = FallbackModel(["ollama:llama3", "vllm:Qwen/Qwen2.5-7B-Instruct"])
    assert [type(m) for m in fallback.models] == [OllamaModel, VLLMModel]
    assert fallback.model_id == "llama3"
    with pytest.raises(ValueError):
        FallbackModel([])


def test_inner_models_retries_reach_the_fallbacks_listeners() -> None:
    from codeloop.events import Event, ModelRetry

    seen: list[Event] = []
    bad_script, good_script = [Fault.rate_limit(0)] * 4, [Fault.server_error(), "ok"]
    with ScriptedLLMServer(bad_script) as bad, ScriptedLLMServer(good_script) as good:
        fallback = FallbackModel([make(bad, "a"), make(good, "b")])
        fallback.event_listeners.append(seen.append)
        assert fallback.generate(HI).content == "ok"
    assert all(isinstance(e, ModelRetry) for e in seen)
    # `a` retries once (max_retries=1) and is given up; `b` retries once and answers.
    assert [(e.notice.model_id, e.notice.status) for e in seen] == [("a", 429), ("b", 500)]  # type: ignore[attr-defined]
