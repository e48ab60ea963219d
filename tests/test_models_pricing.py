"""The price table: one dated data file, model-id matching, cost arithmetic, user overrides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from codeloop.models import estimate_cost as exported_estimate_cost
from codeloop.models.base import TokenUsage
from codeloop.models.pricing import (
    PRICES_ENV,
    Price,
    estimate_cost,
    load_prices,
    normalize_model_id,
    price_for,
    prices_as_of,
    reset_prices,
    set_price,
)

DATA = Path(__file__).resolve().parents[1] / "src" / "codeloop" / "models" / "pricing.json"


@pytest.fixture(autouse=True)
def fresh_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(PRICES_ENV, raising=False)
    reset_prices()
    yield
    reset_prices()


def test_table_is_one_dated_file_covering_each_provider() -> None:
    data = json.loads(DATA.read_text())
    assert date.fromisoformat(data["as_of"]) == date.fromisoformat(prices_as_of())
    assert data["currency"] == "USD" and data["unit"] == "per million tokens"
    for model in (
        "gpt-4o",
        "o3",
        "gpt-5",
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "deepseek-chat",
        "mistral-large-latest",
    ):
        assert model in data["models"]
    assert estimate_cost is exported_estimate_cost


@pytest.mark.parametrize(
    ("model_id", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai:gpt-4.1-mini", "gpt-4-1-mini"),
        ("openai/o3-mini", "o3-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini-2.5-flash-lite", "gemini-2-5-flash-lite"),
    ],
)
def test_model_ids_match_the_longest_entry(model_id: str, key: str) -> None:
    price = price_for(model_id)
    assert price is not None
    assert price == price_for(key)
    assert normalize_model_id(key) == key.replace(".", "-")


def test_unknown_models_have_no_price() -> None:
    assert price_for("Qwen/Qwen2.5-Coder-32B-Instruct") is None
    assert price_for("gpt-4oops") is None  # no match without a boundary after the key
    assert estimate_cost("my-finetune", TokenUsage(100, 100)) is None
    assert estimate_cost("gpt-4o", None) is None


def test_cost_arithmetic_with_cache_reads_and_writes() -> None:
    usage = TokenUsage(
        input_tokens=1_000_000, output_tokens=200_000, cache_read_tokens=600_000, cache_write_tokens=100_000
    )
    # claude-sonnet-4-5: 3 in, 15 out, 0.30 cache read, 3.75 cache write (USD / M tokens)
    expected = 0.3 * 3 + 0.6 * 0.3 + 0.1 * 3.75 + 0.2 * 15
    assert estimate_cost("claude-sonnet-4-5", usage) == pytest.approx(expected)
    # a missing cache price falls back to the input price
    assert Price(1.0, 2.0).cost(TokenUsage(1_000_000, 0, cache_read_tokens=500_000)) == pytest.approx(1.0)


def test_local_providers_cost_nothing() -> None:
    assert estimate_cost("qwen2.5-coder:7b", TokenUsage(10_000, 1_000), provider="ollama") == 0.0
    assert estimate_cost("gpt-4o", TokenUsage(1_000_000, 0), provider="openai") == pytest.approx(2.5)


def test_set_price_overrides_and_reset_restores() -> None:
    set_price("gpt-4o", input=1.0, output=1.0)
    set_price("my-finetune", input=0.5, output=1.5)
    assert estimate_cost("gpt-4o", TokenUsage(1_000_000, 1_000_000)) == pytest.approx(2.0)
    assert estimate_cost("my-finetune-v2", TokenUsage(2_000_000, 0)) == pytest.approx(1.0)
    reset_prices()
    assert estimate_cost("gpt-4o", TokenUsage(1_000_000, 0)) == pytest.approx(2.5)


def test_user_file_from_environment_and_load_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "prices.json"
    env_file.write_text(json.dumps({"models": {"house-model": {"input": 4, "output": 8}}}))
    monkeypatch.setenv(PRICES_ENV, str(env_file))
    reset_prices()
    assert estimate_cost("house-model", TokenUsage(1_000_000, 1_000_000)) == pytest.approx(12.0)
    extra = tmp_path / "more.json"
    extra.write_text(json.dumps({"gpt-4o": {"input": 0, "output": 0}}))
    load_prices(extra)
    assert estimate_cost("gpt-4o", TokenUsage(5, 5)) == 0.0


def test_bad_price_files_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"m": {"input": 1}}}))
    with pytest.raises(ValueError, match="'m' needs numbers 'input' and 'output'"):
        load_prices(bad)
    with pytest.raises(ValueError, match="cannot read prices"):
        load_prices(tmp_path / "missing.json")
