"""Context compaction (codeloop.compaction) and prompt caching, driven through the scripted server's real wires.

One scripted 14-step CodeAgent run per wire (OpenAI and Anthropic) is shared by the tests that read it: every
step prints a long, unique observation, so which of them a request still carries shows what was masked.
"""

from __future__ import annotations

import json
import re
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


def _condensed_upto(number: int) -> int:
    """How many steps request `number` shows condensed under the default policy (3 kept, 3 at a time)."""
    done = number - 1
    return 0 if done < 6 else (done - 3) // 3 * 3


def _digest_messages(body: dict[str, Any]) -> list[str]:
    texts = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return [t for t in texts if re.match(r"(Earlier steps, condensed|\d+\. )", t)]


def test_old_steps_are_condensed_in_batches_after_keep_last_plus_every_steps(openai_run: Any) -> None:
    requests, result, _ = openai_run
    assert result.output == 3 and len(requests) == STEPS
    assert DEFAULT_COMPACTION == MaskObservations(keep_last=3, every=3, condense_actions=True)
    for number, body in enumerate(requests, start=1):
        condensed = _condensed_upto(number)
        assert _observation_steps(body) == set(range(condensed + 1, number)), number
        text = json.dumps(body["messages"])
        # a condensed step's code is gone, its digest line is there; a kept step's code is there in full
        for i in range(1, number):
            assert (f"x{i} = list(range({i}))" in text) == (i > condensed), (number, i)
        lines = "\n".join(_digest_messages(body)).splitlines()
        assert [line.split(".")[0] for line in lines if line[:1].isdigit()] == [
            str(i) for i in range(1, condensed + 1)
        ]
    assert "3. Set x3; printed 300 characters." in json.dumps(requests[6]["messages"])


def test_the_condensed_prefix_only_grows_at_its_end(openai_run: Any) -> None:
    requests, _, _ = openai_run
    bodies = [r["messages"] for r in requests]  # bodies[k] is request k + 1
    for k in (6, 7, 9, 10, 12):  # within a batch (requests 7-9, 10-12, 13-14) each request extends the last
        assert json.dumps(bodies[k + 1][: len(bodies[k])]) == json.dumps(bodies[k]), k + 1
    assert bodies[9][: len(bodies[8])] != bodies[8]  # request 10 opened a new batch: steps 4-6 condensed
    # a batch's digest message never changes once made: a new batch appends one, so cached prefixes survive
    first = _digest_messages(requests[6])
    assert len(first) == 1 and first[0].startswith("Earlier steps, condensed to save context")
    for body in requests[7:]:
        assert _digest_messages(body)[0] == first[0]
    assert _digest_messages(requests[12])[:2] == _digest_messages(requests[9])[:2]
    assert len(_digest_messages(requests[12])) == 3 and _digest_messages(requests[12])[2].startswith("7. ")


def test_code_agent_states_its_variables_after_the_condensed_steps(openai_run: Any) -> None:
    requests, result, _ = openai_run
    messages = requests[9]["messages"]  # request 10: steps 1-6 condensed
    states = [i for i, m in enumerate(messages) if str(m["content"]).startswith("Variables after step")]
    assert len(states) == 1
    state = messages[states[0]]["content"]
    # the namespace after the last condensed step: the data is still there to print again
    assert state.startswith("Variables after step 6 (print what you need): x1 (list, 1 items)")
    assert "x6 (list, 6 items)" in state and "x7" not in state
    assert messages[states[0] - 1]["content"].startswith("4. ")  # right after the condensed steps
    notes = [s.context_note for s in result.steps if getattr(s, "context_note", None)]
    assert notes == [
        "Steps 1-3 are condensed to a line each (the last 3 are shown).",
        "Steps 1-6 are condensed to a line each (the last 3 are shown).",
        "Steps 1-9 are condensed to a line each (the last 3 are shown).",
    ]


def test_memory_keeps_every_step_in_full_when_the_requests_are_condensed(openai_run: Any) -> None:
    requests, result, agent = openai_run
    assert "obs1-obs1-" not in json.dumps(requests[-1]["messages"])
    saved = json.loads(agent.memory.to_json())
    actions = [s for s in saved["steps"] if s["type"] == "action"]
    assert len(actions) == STEPS
    for i, step in enumerate(actions[:-1], start=1):
        assert step["code_action"] == f"x{i} = list(range({i}))\nprint('obs{i}-' * 60)"
        assert step["observations"].strip() == f"obs{i}-" * 60
    assert all(f"obs{i}-obs{i}-" in json.dumps([m.content for m in agent.memory.to_messages()])
               for i in range(1, STEPS))  # fmt: skip


def test_condense_actions_off_keeps_the_code_and_masks_only_the_output() -> None:
    policy = MaskObservations(keep_last=2, every=2, condense_actions=False)
    with ScriptedLLMServer(_code_replies()[:6] + ["```python\nfinal_answer(len(x3))\n```"]) as server:
        model = OpenAIModel("scripted", api_base=server.base_url)
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, compaction=policy)
        assert agent.run("Count things.") == 3
        last = server.requests[-1]["messages"]  # 6 steps done: 1-4 masked, 5-6 in full
    text = json.dumps(last)
    assert all(f"x{i} = list(range({i}))" in text for i in range(1, 7))
    assert _observation_steps({"messages": last}) == {5, 6}
    placeholders = [m["content"] for m in last if "Output removed to save context" in str(m["content"])]
    assert len(placeholders) == 4 and "Variables defined now: x1 (list, 1 items)" in placeholders[-1]
    assert not _digest_messages({"messages": last})


def _breakpoints(body: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (t, b)
        for t, turn in enumerate(body["messages"])
        for b, block in enumerate(turn["content"])
        if "cache_control" in block
    ]


def _unmarked(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def test_anthropic_cache_breakpoint_at_the_condensed_boundary_is_stable_across_a_batch(
    anthropic_run: Any,
) -> None:
    batch = anthropic_run[9:12]  # requests 10-12: steps 1-6 condensed
    points = [_breakpoints(body) for body in batch]
    boundary = points[0][0]
    for body, found in zip(batch, points, strict=True):
        assert "cache_control" in body["system"][-1]
        assert len(found) == 2 and found[0] == boundary  # the boundary, then the end of the conversation
        assert found[1] == (len(body["messages"]) - 1, len(body["messages"][-1]["content"]) - 1)
        # everything up to the boundary breakpoint is byte-identical, so the cache entry written there is read
        turns = body["messages"][: boundary[0] + 1]
        assert json.dumps(turns[:-1]) == json.dumps(batch[0]["messages"][: boundary[0]])
        assert json.dumps(turns[-1]["content"][: boundary[1] + 1]) == json.dumps(
            batch[0]["messages"][boundary[0]]["content"][: boundary[1] + 1]
        )
    # the breakpoint closes the last condensed batch (steps 4-6); the variables line comes after it
    block = batch[0]["messages"][boundary[0]]["content"][boundary[1]]
    assert block["text"].startswith("4. ") and "6. " in block["text"]
    after = batch[0]["messages"][boundary[0]]["content"][boundary[1] + 1]
    assert after["text"].startswith("Variables after step 6")
    # the previous batch's breakpoint (after steps 1-3) is still a block boundary with the same text before it
    # (cache_control marks are not part of the cached content: compare without them)
    earlier = _breakpoints(anthropic_run[8])[0]
    before = anthropic_run[8]["messages"][earlier[0]]["content"][: earlier[1] + 1]
    now = batch[0]["messages"][earlier[0]]["content"][: earlier[1] + 1]
    assert [_unmarked(b) for b in before] == [_unmarked(b) for b in now]
    assert before[-1]["text"].startswith("Earlier steps, condensed") and "3. " in before[-1]["text"]
    assert len(_breakpoints(anthropic_run[2])) == 1  # before any condensing: only the end of the conversation


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


def test_a_local_servers_context_window_is_asked_once_or_set_by_the_user() -> None:
    replies = [f"```python\nprint('{i}' + 'y' * 30000)\n```" for i in range(1, 4)]
    with ScriptedLLMServer([*replies, "```python\nfinal_answer('done')\n```"], n_ctx=4_096) as server:
        model = OpenAIModel("scripted", api_base=server.base_url, max_tokens=256)
        agent = CodeAgent(model=model, executor="local", verbosity_level=0, max_steps=6)
        assert agent.compaction is not None and agent.compaction.window(model) == 4_096
        assert agent.run("Print a lot.") == "done"
        props = [e for e in server.exchanges if e.path == "/props"]
        assert len(props) == 1 and props[0].method == "GET"  # asked once per model, not at every step
        for body in server.requests:  # the discovered window is enforced: every request fits in it
            text = "".join(m["content"] for m in body["messages"])
            assert estimate_tokens(text) + 4 * len(body["messages"]) <= 4_096 - 256
    with ScriptedLLMServer(["4"]) as server:  # llama-cpp-python's server: no /props, so no window
        model = OpenAIModel("scripted", api_base=server.base_url)
        assert DEFAULT_COMPACTION.window(model) is None and DEFAULT_COMPACTION.window(model) is None
        assert [e.path for e in server.exchanges] == ["/props"]  # a 404 is an answer: not asked again
        assert (
            DEFAULT_COMPACTION.window(OpenAIModel("x", api_base=server.base_url, context_window=8_192))
            == 8_192
        )
        assert len(server.exchanges) == 1  # a window the user set needs no question
    with pytest.raises(ValueError, match="context_window must be a positive number of tokens"):
        OpenAIModel("x", api_base="http://127.0.0.1:9/v1", context_window=0)
    assert DEFAULT_COMPACTION.window(OpenAIModel("unknown-model", api_key="sk-test")) is None  # not local
