"""A CodeAgent and a ToolCallingAgent complete a multi-step scripted run on every adapter.

Network adapters talk to the scripted server through their official SDKs; TransformersModel runs a tiny
random Llama forced along the script. Each run uses a tool, carries a value from step 1 into step 2, and
sums token usage over the steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.models.base import Model
from codeloop.models.fallback import FallbackModel
from codeloop.testing.faults import Fault
from codeloop.testing.scripted import Reply, ScriptRequest
from codeloop.testing.server import ScriptedLLMServer
from test_models_contract import ADAPTERS

FAST: dict[str, Any] = {"retry_base_delay": 0.01, "max_retries": 1}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return {"Paris": "18C", "Tokyo": "24C"}.get(city, "unknown")


@contextmanager
def served(name: str, script: list[Reply]) -> Iterator[tuple[Model, list[str]]]:
    """The model named `name` answering `script`, and the text of every prompt it was sent (as seen by the
    server, or for the local model as decoded by the tokenizer)."""
    if name == "transformers":
        from transformers import LogitsProcessorList

        from codeloop.models.transformers import TransformersModel
        from codeloop.testing.tiny_lm import ScriptedLogits

        model, tokenizer = _tiny()
        forcing = ScriptedLogits(tokenizer, script)
        yield (
            TransformersModel(
                "tiny-llama",
                model=model,
                tokenizer=tokenizer,
                logits_processor=LogitsProcessorList([forcing]),
                do_sample=False,
                max_new_tokens=400,
            ),
            forcing.prompts,
        )
        return
    prompts: list[str] = []

    def script_fn(request: ScriptRequest) -> Reply:
        prompts.append("\n".join(f"[{m.role}:{m.tool_call_id or ''}] {m.text}" for m in request.messages))
        return script[request.index]

    if name == "fallback":
        # The first model always fails; the second (Anthropic) serves every step.
        with (
            ScriptedLLMServer([Fault.error(401, "invalid key")] * 10) as broken,
            ScriptedLLMServer(script_fn) as good,
        ):
            yield (
                FallbackModel([ADAPTERS["openai"](broken, **FAST), ADAPTERS["anthropic"](good, **FAST)]),
                prompts,
            )
        return
    with ScriptedLLMServer(script_fn) as server:
        yield ADAPTERS[name](server, **FAST), prompts


_TINY: list[tuple[Any, Any]] = []


def _tiny() -> tuple[Any, Any]:
    from codeloop.testing.tiny_lm import tiny_chat_model

    if not _TINY:
        _TINY.append(tiny_chat_model())
    return _TINY[0]


ALL = sorted([*ADAPTERS, "transformers", "fallback"])
USAGE = [{"input_tokens": 300, "output_tokens": 40}, {"input_tokens": 420, "output_tokens": 30}]


def _code(src: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"content": f"Thought: next.\n```python\n{src}\n```", "usage": usage}


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("name", ALL)
def test_code_agent_multi_step_run(name: str, stream: bool) -> None:
    script: list[Reply] = [
        _code("paris = get_weather(city='Paris')\nprint('Paris:', paris)", USAGE[0]),
        _code("final_answer(f'It is {paris} in Paris')", USAGE[1]),
    ]
    with served(name, script) as (model, prompts):
        agent = CodeAgent(
            tools=[get_weather], model=model, executor="local", verbosity_level=0, stream_outputs=stream
        )
        result = agent.run("What is the weather in Paris?", return_full_result=True)
    assert result.state == "success"
    assert result.output == "It is 18C in Paris"
    assert len(prompts) == 2
    assert "Paris: 18C" in prompts[1]  # the observation of step 1 reached the model in step 2
    if name != "transformers":  # the local model counts its own tokens
        assert result.token_usage.input_tokens == 720 and result.token_usage.output_tokens == 70
    else:
        assert result.token_usage.input_tokens > 0 and result.token_usage.output_tokens > 0


@pytest.mark.parametrize("name", ALL)
def test_tool_calling_agent_multi_step_run(name: str) -> None:
    script: list[Reply] = [
        {
            "content": "Checking both.",
            "tool_calls": [
                {"id": "call_paris", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"id": "call_tokyo", "name": "get_weather", "arguments": {"city": "Tokyo"}},
            ],
            "usage": USAGE[0],
        },
        {
            "tool_calls": [
                {"id": "call_done", "name": "final_answer", "arguments": {"answer": "Paris 18C, Tokyo 24C"}}
            ],
            "usage": USAGE[1],
        },
    ]
    with served(name, script) as (model, prompts):
        agent = ToolCallingAgent(tools=[get_weather], model=model, verbosity_level=0)
        result = agent.run("Weather in Paris and Tokyo?", return_full_result=True)
    assert result.state == "success"
    assert result.output == "Paris 18C, Tokyo 24C"
    assert len(prompts) == 2
    assert "18C" in prompts[1] and "24C" in prompts[1]
    if name != "transformers":
        # native tool results, each answering its call id
        assert "[tool:call_paris] 18C" in prompts[1] and "[tool:call_tokyo] 24C" in prompts[1]
        assert result.token_usage.input_tokens == 720


def test_async_agent_run_on_anthropic() -> None:
    script: list[Reply] = [_code("x = 20 + 22", USAGE[0]), _code("final_answer(x)", USAGE[1])]
    with served("anthropic", script) as (model, _):
        agent = CodeAgent(tools=[], model=model, executor="local", verbosity_level=0)
        assert asyncio.run(agent.arun("add")) == 42


CUT_REPLY = (
    "Thought: I will compute the answer step by step, carefully.\n```python\nx = 6 * 7\nfinal_answer(x)\n```"
)


def _cut_server() -> ScriptedLLMServer:
    # The reply's first frames go out, then the connection drops mid-reply: a real broken SSE stream.
    return ScriptedLLMServer(
        ["```python\nkept = 'step one'\nprint(kept)\n```", Fault.cut(CUT_REPLY, after_chunks=6)], chunk_size=5
    )


def test_a_stream_cut_mid_reply_keeps_the_part_that_arrived() -> None:
    from codeloop.errors import AgentGenerationError
    from codeloop.models.openai import OpenAIModel

    with _cut_server() as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="k", **FAST)
        agent = CodeAgent([], model, executor="local", stream_outputs=True, verbosity_level=0)
        with pytest.raises(AgentGenerationError, match="the stream was cut after") as info:
            agent.run("compute")
    result = info.value.result  # type: ignore[attr-defined]
    first, cut = (s for s in result.steps if type(s).__name__ == "ActionStep")
    assert first.observations and "step one" in first.observations  # the step before is intact
    assert cut.model_output and CUT_REPLY.startswith(cut.model_output) and cut.model_output != CUT_REPLY
    assert cut.model_output_message is not None and cut.model_output_message.text == cut.model_output
    assert cut.error is not None and "stream was cut" in cut.error
    assert cut.error_type == "AgentGenerationError"
    assert info.value.partial_output == cut.model_output


def test_a_stream_cut_keeps_the_partial_reply_in_async_runs_too() -> None:
    from codeloop.events import ModelTextDelta, RunFinished
    from codeloop.models.openai import OpenAIModel

    async def run() -> tuple[str, Any]:
        with _cut_server() as server:
            model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="k", **FAST)
            agent = CodeAgent([], model, executor="local", stream_outputs=True, verbosity_level=0)
            streamed, finished = "", None
            async for event in agent.astream("compute"):
                if isinstance(event, ModelTextDelta):
                    streamed += event.text
                elif isinstance(event, RunFinished):
                    finished = event.result
            agent.close()
            return streamed, finished

    streamed, result = asyncio.run(run())
    assert result.state == "error" and "stream was cut" in result.error
    cut = result.steps[-1]
    assert cut.model_output and streamed.endswith(cut.model_output)  # what the user saw streamed is kept


def test_retries_reach_the_agents_listeners_and_console_as_events() -> None:
    import io

    from rich.console import Console

    from codeloop.console import ConsoleRenderer
    from codeloop.events import Event, ModelOutput, ModelRetry
    from codeloop.models.openai import OpenAIModel

    seen: list[Event] = []
    screen = io.StringIO()
    console = ConsoleRenderer(level=1, console=Console(file=screen, width=200))
    replies = [Fault.rate_limit(retry_after=0.2), "```python\nfinal_answer(3)\n```"]
    with ScriptedLLMServer(replies) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="k", **FAST)
        agent = CodeAgent([], model, executor="local", verbosity_level=0, listeners=[seen.append, console])
        assert agent.run("three") == 3
    retries = [e for e in seen if isinstance(e, ModelRetry)]
    assert [(e.notice.status, e.notice.retry_number, e.agent) for e in retries] == [(429, 1, "CodeAgent")]
    assert seen.index(retries[0]) < next(i for i, e in enumerate(seen) if isinstance(e, ModelOutput))
    assert "openai model 'gpt-4o': retrying in 0.2 s: HTTP 429" in screen.getvalue()


def test_retries_go_to_the_run_that_made_the_request_when_agents_share_a_model() -> None:
    import threading

    from codeloop.events import Event, ModelRetry
    from codeloop.models.openai import OpenAIModel

    limited = threading.Event()

    def script(request: ScriptRequest) -> Any:
        if "alpha" in request.messages[-1].text and not limited.is_set():
            limited.set()
            return Fault.rate_limit(retry_after=0.2)
        return "```python\nfinal_answer('done')\n```"

    async def both(model: OpenAIModel) -> tuple[list[Event], list[Event]]:
        seen_a: list[Event] = []
        seen_b: list[Event] = []
        a = CodeAgent([], model, executor="local", verbosity_level=0, listeners=[seen_a.append])
        b = CodeAgent([], model, executor="local", verbosity_level=0, listeners=[seen_b.append])
        await asyncio.gather(a.arun("task alpha"), b.arun("task beta"))
        a.close()
        b.close()
        return seen_a, seen_b

    with ScriptedLLMServer(script) as server:
        model = OpenAIModel("gpt-4o", api_base=server.base_url, api_key="k", **FAST)
        seen_a, seen_b = asyncio.run(both(model))
        # and a synchronous run of another agent afterwards sees nothing of them
        seen_c: list[Event] = []
        CodeAgent([], model, executor="local", verbosity_level=0, listeners=[seen_c.append]).run("task gamma")
    assert [e.notice.status for e in seen_a if isinstance(e, ModelRetry)] == [429]
    assert not any(isinstance(e, ModelRetry) for e in seen_b + seen_c)
    assert model.event_listeners == []  # no agent stays attached to a shared model
