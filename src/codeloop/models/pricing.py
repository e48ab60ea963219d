"""What model calls cost: a price table kept as one data file (`pricing.json`, dated), overridable by the user.

Prices are USD per million tokens for input, output, cache reads and cache writes. A model id is matched to
the longest table entry it starts with, after normalising spellings providers use for the same model:
`gpt-4o-2024-08-06` -> `gpt-4o`, `anthropic/claude-sonnet-4.5` -> `claude-sonnet-4-5`,
`us.anthropic.claude-sonnet-4-20250514-v1:0` -> `claude-sonnet-4`.

Overrides, later ones winning: the JSON file named by the `CODELOOP_PRICES` environment variable (same shape
as `pricing.json`, or just its `models` mapping), `load_prices(path)`, and `set_price(...)`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .base import TokenUsage

__all__ = [
    "Price",
    "PRICES_ENV",
    "LOCAL_PROVIDERS",
    "estimate_cost",
    "price_for",
    "set_price",
    "load_prices",
    "reset_prices",
    "prices_as_of",
]

PRICES_ENV = "CODELOOP_PRICES"
LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "transformers"})
"""Providers that run on the user's own hardware: their calls cost nothing per token."""

_VENDOR_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|au|jp|global|anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|google)\.)+"
)
_KNOWN_SPEC_PREFIXES = re.compile(
    r"^(?:openai|azure|anthropic|hf|litellm|transformers|bedrock|ollama|vllm|openrouter|together|groq|gemini"
    r"|deepseek|mistral):"
)


@dataclass(frozen=True)
class Price:
    """USD per million tokens. A missing cache price falls back to the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        """USD for `usage`. `input_tokens` includes cached tokens, which are billed at their own rates."""
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        fresh = max(0, usage.input_tokens - cache_read - cache_write)
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        total = (
            fresh * self.input
            + cache_read * read_rate
            + cache_write * write_rate
            + usage.output_tokens * self.output
        )
        return total / 1_000_000


def normalize_model_id(model_id: str) -> str:
    """The spelling table keys use: lower case, no provider prefix, dots between digits as dashes."""
    name = _KNOWN_SPEC_PREFIXES.sub("", model_id.strip().lower())
    name = name.rsplit("/", 1)[-1]
    name = _VENDOR_PREFIX.sub("", name)
    return re.sub(r"(?<=\d)\.(?=\d)", "-", name)


class _Table:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prices: dict[str, Price] | None = None
        self.as_of = ""

    def load(self) -> dict[str, Price]:
        with self.lock:
            if self.prices is None:
                data = json.loads(
                    resources.files("codeloop.models").joinpath("pricing.json").read_text("utf-8")
                )
                self.as_of = str(data.get("as_of", ""))
                self.prices = _parse(data, "pricing.json")
                override = os.environ.get(PRICES_ENV)
                if override:
                    self.prices.update(_read_file(Path(override)))
            return self.prices


_TABLE = _Table()


def _parse(data: dict[str, Any], source: str) -> dict[str, Price]:
    models = data.get("models", data)
    if not isinstance(models, dict):
        raise ValueError(f"{source}: expected an object mapping model ids to prices")
    parsed: dict[str, Price] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
            raise ValueError(
                f"{source}: price of {name!r} needs numbers 'input' and 'output' (USD per million tokens), "
                f"optionally 'cache_read' and 'cache_write'; got {entry!r}"
            )
        parsed[normalize_model_id(name)] = Price(
            float(entry["input"]),
            float(entry["output"]),
            None if entry.get("cache_read") is None else float(entry["cache_read"]),
            None if entry.get("cache_write") is None else float(entry["cache_write"]),
        )
    return parsed


def _read_file(path: Path) -> dict[str, Price]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read prices from {path} ({PRICES_ENV} or load_prices): {exc}") from exc
    return _parse(data, str(path))


def prices_as_of() -> str:
    """The date of the built-in price table (ISO format)."""
    _TABLE.load()
    return _TABLE.as_of


def load_prices(path: str | Path) -> None:
    """Merge prices from a JSON file (shape of `pricing.json`, or just the `models` mapping) over the table."""
    parsed = _read_file(Path(path))
    table = _TABLE.load()
    with _TABLE.lock:
        table.update(parsed)


def set_price(
    model_id: str,
    *,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
) -> None:
    """Set (or replace) one model's price, USD per million tokens."""
    table = _TABLE.load()
    with _TABLE.lock:
        table[normalize_model_id(model_id)] = Price(input, output, cache_read, cache_write)


def reset_prices() -> None:
    """Forget overrides: the next lookup reloads `pricing.json` (and `CODELOOP_PRICES`)."""
    with _TABLE.lock:
        _TABLE.prices = None


def price_for(model_id: str) -> Price | None:
    """The price of `model_id`: the longest table entry it starts with (at a word boundary), if any."""
    name = normalize_model_id(model_id)
    table = _TABLE.load()
    best: str | None = None
    for key in table:
        if name == key or (name.startswith(key) and name[len(key)] in "-:@_"):
            if best is None or len(key) > len(best):
                best = key
    return None if best is None else table[best]


def estimate_cost(model_id: str, usage: TokenUsage | None, *, provider: str | None = None) -> float | None:
    """USD that `usage` cost on `model_id`; `None` when the price is unknown.

    Models served by a local provider (`provider` in `LOCAL_PROVIDERS`) cost 0.
    """
    if usage is None:
        return None
    if provider in LOCAL_PROVIDERS:
        return 0.0
    price = price_for(model_id)
    return None if price is None else price.cost(usage)
