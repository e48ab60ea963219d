"""Context compaction (codeloop.compaction) and prompt caching, driven through the scripted server's real wires.

One scripted 14-step CodeAgent run per wire (OpenAI and Anthropic) is shared by the tests that read it: every
step prints a long, unique observation, so which of them a request still carries shows what was masked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.sandbox_support import needs_bwrap

from codeloop import CodeAgent, ToolCallingAgent, tool
from codeloop.compaction import (
    DEFAULT_COMPACTION,
    ContextWindowTooSmall,
    MaskObservations,
    Summarize,
    estimate_tokens,
)
from codeloop.executors import LocalExecutor, SandboxExecutor
from codeloop.models.anthropic import AnthropicModel
from codeloop.models.base import TokenUsage
from codeloop.models.openai import OpenAIModel
from codeloop.models.pricing import estimate_cost, reset_prices, set_price
from codeloop.testing import Fault, ScriptedLLMServer

STEPS = 14


def _code_replies() -> list[str]:
    replies = [
        f"Step {i}.\n```python\nx{i} = list(range({i}))\nprint('obs{i}-' * 60)\n```" for i in range(1, STEPS)
    ]
    return [*replies, "Done.\n```python\nfinal_answer(len(x3))\n```"]


def _observation_steps(body: dict[str, Any]) -> set[int]:
    """The steps whose full observation a request carries."""
    text = json.dumps(body["messages"])
    return {i for i in range(1, STEPS) if f"obs{i}-obs{i}-" in text}


@pytest.fixture(scope="module")
def openai_run() -> tuple[list[dict[str, Any]], Any, CodeAgent]:
    with ScriptedLLMServer(_code_replies()) as server:
        model = OpenAIModel("scripted", api_base=server.base_url)
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, max_steps=STEPS + 2)
        result = agent.run("Count things.", return_full_result=True)
        return list(server.requests), result, agent


@pytest.fixture(scope="module")
def anthropic_run() -> list[dict[str, Any]]:
    with ScriptedLLMServer(_code_replies()) as server:
        model = AnthropicModel("claude-sonnet-4-6", api_base=server.url, api_key="sk-ant-test")
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, max_steps=STEPS + 2)
        assert agent.run("Count things.") == 3
        return list(server.requests)


def test_observations_are_masked_in_batches_after_keep_last_plus_every_steps(openai_run: Any) -> None:
    requests, result, _ = openai_run
    assert result.output == 3 and len(requests) == STEPS
    assert DEFAULT_COMPACTION == MaskObservations(keep_last=5, every=4)
    for number, body in enumerate(requests, start=1):
        done = number - 1
        masked = 0 if done < 9 else (done - 5) // 4 * 4  # batches of 4 once 5 + 4 steps are done
        assert _observation_steps(body) == set(range(masked + 1, number)), number


def test_prefix_is_append_only_between_batches(openai_run: Any) -> None:
    requests, _, _ = openai_run
    bodies = [r["messages"] for r in requests]  # bodies[k] is request k + 1
    for k in (9, 10, 11):  # requests 10-13 share the batch that masked steps 1-4: each extends the last
        assert json.dumps(bodies[k + 1][: len(bodies[k])]) == json.dumps(bodies[k]), k + 1
    assert bodies[13][: len(bodies[12])] != bodies[12]  # request 14 opened a new batch: steps 5-8 masked


def test_code_agent_shows_its_variables_where_output_was_masked(openai_run: Any) -> None:
    requests, result, _ = openai_run
    texts = [m["content"] for m in requests[9]["messages"] if isinstance(m["content"], str)]
    placeholders = [t for t in texts if "Output removed to save context" in t]
    assert len(placeholders) == 4
    # the last masked step names the namespace after it: the data is still there to print again
    assert "Variables defined now: x1 (list, 1 items)" in placeholders[-1]
    assert "x4 (list, 4 items)" in placeholders[-1] and "x5" not in placeholders[-1]
    notes = [s.context_note for s in result.steps if getattr(s, "context_note", None)]
    assert notes == [
        "Observations of steps 1-4 are masked (the last 5 are shown).",
        "Observations of steps 1-8 are masked (the last 5 are shown).",
    ]


def _breakpoints(body: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (t, b)
        for t, turn in enumerate(body["messages"])
        for b, block in enumerate(turn["content"])
        if "cache_control" in block
    ]


def test_anthropic_cache_breakpoint_at_the_mask_boundary_is_stable_across_a_batch(anthropic_run: Any) -> None:
    batch = anthropic_run[9:13]  # requests 10-13: steps 1-4 masked
    points = [_breakpoints(body) for body in batch]
    boundary = points[0][0]
    for body, found in zip(batch, points, strict=True):
        assert "cache_control" in body["system"][-1]
        assert len(found) == 2 and found[0] == boundary  # the boundary, then the end of the conversation
        assert found[1] == (len(body["messages"]) - 1, len(body["messages"][-1]["content"]) - 1)
        # everything up to the boundary breakpoint is byte-identical, so the cache entry written there is read
        turns = body["messages"][: boundary[0] + 1]
        assert json.dumps(turns) == json.dumps(batch[0]["messages"][: boundary[0] + 1])
    assert "Output removed to save context" in json.dumps(batch[0]["messages"][boundary[0]])
    assert len(_breakpoints(anthropic_run[2])) == 1  # before any masking: only the end of the conversation


def test_summariser_failure_goes_on_with_masking_and_says_so() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: The key.
        """
        return f"value of {key}: " + "z" * 300

    def script(request: Any) -> Any:
        if request.messages[0].text.startswith("You condense"):
            return Fault.error(400, "summariser model is unavailable")
        done = sum(1 for m in request.messages if m.role == "tool")
        if done < 7:
            return {"tool_calls": [{"name": "lookup", "arguments": {"key": f"k{done}"}}]}
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "ok"}}]}

    with ScriptedLLMServer(script) as server:
        model = OpenAIModel("scripted", api_base=server.base_url, max_retries=0)
        agent = ToolCallingAgent(
            [lookup], model=model, verbosity_level=0, compaction=Summarize(keep_last=2, every=2)
        )
        result = agent.run("Look up five keys.", return_full_result=True)
        bodies = list(server.requests)
    assert result.state == "success" and result.output == "ok"
    failed = [s for s in result.steps if "summariser call failed" in (getattr(s, "context_note", "") or "")]
    assert len(failed) == 2  # tried once per batch (steps 1-2, then 1-4), not at every step
    assert "steps 1-2 are masked instead" in failed[0].context_note
    assert "steps 1-4 are masked instead" in failed[1].context_note
    assert sum(b["messages"][0]["content"].startswith("You condense") for b in bodies) == 2
    last = json.dumps(bodies[-1]["messages"])
    assert "value of k3" not in last and "value of k4" in last and "value of k6" in last
    assert "Result removed to save context" in last


def test_summary_replaces_old_steps_and_its_tokens_are_counted() -> None:
    set_price("priced-model", input=1.0, output=2.0, cache_read=0.1)
    try:
        calls: list[int] = []

        def script(request: Any) -> Any:
            if request.messages[0].text.startswith("You condense"):
                assert "obs1-obs1-" in request.messages[1].text  # the summariser reads the steps in full
                return {"content": "Made x1 and x2.", "usage": {"input_tokens": 700, "output_tokens": 30}}
            calls.append(1)
            n = len(calls)
            code = f"x{n} = {n}\nprint('obs{n}-' * 40)" if n < 5 else "final_answer(x1)"
            usage = {"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 60}
            return {"content": f"```python\n{code}\n```", "usage": usage}

        with ScriptedLLMServer(script) as server:
            model = OpenAIModel("priced-model", api_base=server.base_url)
            agent = CodeAgent(
                model=model, executor="local", verbosity_level=0, compaction=Summarize(keep_last=2, every=2)
            )
            result = agent.run("Make variables.", return_full_result=True)
            bodies = list(server.requests)
        summaries = [b for b in bodies if b["messages"][0]["content"].startswith("You condense")]
        assert len(summaries) == 1 and result.output == 1
        last = json.dumps(bodies[-1]["messages"])
        assert "Made x1 and x2." in last and "obs1-obs1-" not in last and "obs3-obs3-" in last
        usage = result.token_usage
        assert (usage.input_tokens, usage.output_tokens) == (5 * 100 + 700, 5 * 10 + 30)
        assert usage.cache_read_tokens == 5 * 60
        fresh = usage.input_tokens - usage.cache_read_tokens
        expected = (fresh * 1.0 + usage.cache_read_tokens * 0.1 + usage.output_tokens * 2.0) / 1e6
        assert result.cost_usd == pytest.approx(expected)
    finally:
        reset_prices()


def test_an_observation_larger_than_the_budget_is_cut_and_old_steps_left_out() -> None:
    policy = MaskObservations(context_window=6_000, reserve_tokens=500)
    replies = [f"```python\nprint('{i}' + 'y' * 30000)\n```" for i in range(1, 8)]
    replies.append("```python\nfinal_answer('done')\n```")
    with ScriptedLLMServer(replies) as server:
        model = OpenAIModel("scripted", api_base=server.base_url)
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, compaction=policy, max_steps=10)
        result = agent.run("Print a lot.", return_full_result=True)
        bodies = list(server.requests)
    assert result.output == "done"
    for body in bodies:
        text = "".join(m["content"] for m in body["messages"])
        assert estimate_tokens(text) + 4 * len(body["messages"]) <= 6_000 - 500
    assert "characters cut here to fit the model's context window" in json.dumps(bodies[1]["messages"])
    notes = " ".join(s.context_note or "" for s in result.steps if hasattr(s, "context_note"))
    assert "are cut to fit the window" in notes and "left out to fit the context window" in notes
    assert "were left out to fit the context window" in json.dumps(bodies[-1]["messages"])


def test_a_window_too_small_for_the_prompt_fails_before_any_model_call() -> None:
    with ScriptedLLMServer(["never sent"]) as server:
        model = OpenAIModel("scripted", api_base=server.base_url)
        with pytest.raises(
            ContextWindowTooSmall, match=r"is 300 tokens, too small for the system prompt \(~"
        ):
            CodeAgent(model=model, executor="local", compaction=MaskObservations(context_window=300))
        agent = CodeAgent(
            model=model,
            executor="local",
            verbosity_level=0,
            compaction=MaskObservations(context_window=5_000),
        )
        with pytest.raises(ContextWindowTooSmall, match=r"and the task \(~\d[\d,]* tokens\)") as caught:
            agent.run("Sum these: " + "1, " * 8_000)
        assert "5,000 tokens" in str(caught.value)
        assert server.requests == []
    with pytest.raises(ValueError, match="keep_last must be an integer >= 1"):
        MaskObservations(keep_last=0)
    with pytest.raises(TypeError, match="not a context policy"):
        CodeAgent(model=model, executor="local", compaction="mask")  # type: ignore[arg-type]


def test_compaction_none_sends_the_whole_history() -> None:
    with ScriptedLLMServer(_code_replies()) as server:
        model = OpenAIModel("scripted", api_base=server.base_url)
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, max_steps=STEPS, compaction=None)
        agent.run("Count things.")
        assert _observation_steps(server.requests[-1]) == set(range(1, STEPS))


def test_openai_prompt_cache_key_is_one_per_agent_prompt() -> None:
    with ScriptedLLMServer(["```python\nfinal_answer(1)\n```"] * 2 + ["4"]) as server:
        keyed = OpenAIModel("scripted", api_base=server.base_url, prompt_cache_key=True)
        CodeAgent(model=keyed, executor="local", verbosity_level=0).run("One.")
        CodeAgent(model=keyed, executor="local", verbosity_level=0, instructions="Be brief.").run("Two.")
        OpenAIModel("scripted", api_base=server.base_url).generate([])
        first, second, plain = server.requests
    assert first["prompt_cache_key"].startswith("codeloop-")
    assert second["prompt_cache_key"] != first["prompt_cache_key"]  # another system prompt, another cache
    assert (
        "prompt_cache_key" not in plain
    )  # not sent to other servers unless asked: some refuse unknown fields
    assert "prompt_cache_key" in OpenAIModel("gpt-4o", api_key="sk-test").build_request([], None, None, None)


def test_anthropic_cached_tokens_reach_usage_and_cost() -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 20, "cache_read_tokens": 900, "cache_write_tokens": 50}
    with ScriptedLLMServer([{"content": "```python\nfinal_answer(1)\n```", "usage": usage}]) as server:
        model = AnthropicModel("claude-sonnet-4-6", api_base=server.url, api_key="sk-ant-test")
        result = CodeAgent(model=model, executor="local", verbosity_level=0).run(
            "One.", return_full_result=True
        )
    got = result.token_usage
    assert (got.input_tokens, got.cache_read_tokens, got.cache_write_tokens) == (1_000, 900, 50)
    full_price = estimate_cost("claude-sonnet-4-6", TokenUsage(input_tokens=1_000, output_tokens=20))
    assert result.cost_usd is not None and full_price is not None and result.cost_usd < full_price / 2


@pytest.mark.parametrize("kind", ["local", pytest.param("sandbox", marks=needs_bwrap)])
def test_every_executor_describes_its_variables_after_a_step(kind: str) -> None:
    executor = LocalExecutor() if kind == "local" else SandboxExecutor()
    with executor:
        executor.send_tools({})
        result = executor.run("rows = [1, 2, 3]\nname = 'abc'\nrows")
        assert result.variables == "Variables defined now: rows (list, 3 items), name (str, 3 characters)"
        assert executor.run("final_answer(rows)").variables == ""  # nothing to show once the run ends
