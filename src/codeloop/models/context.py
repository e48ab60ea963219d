"""How many tokens a model's context window holds: a small table of known models, overridable.

Context compaction (`codeloop.compaction`) keeps every request under this size. A window is looked up, first
found wins: the policy's own `context_window=`, the model object's `context_window` attribute (set it on any
model: `model.context_window = 32_768`, or `OpenAIModel(..., context_window=32_768)`), what a server on this
machine reports (llama.cpp's `llama-server` at `GET /props`), `set_context_window(...)`, then the table below,
matched like prices (the longest entry the normalised model id starts with). Unknown models have no window
(`None`): compaction then still shrinks old steps but has no budget to enforce, so a request longer than the
server's window gets the server's own error.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from .pricing import normalize_model_id

__all__ = ["context_window_of", "set_context_window", "reserved_output_tokens", "server_props_window"]

# Tokens of input plus output, from each provider's model pages (2026-06). Prefixes cover a family's variants.
_KNOWN: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude": 200_000,
    "gemini-2.5": 1_048_576,
    "gemini-2.0": 1_048_576,
    "deepseek-chat": 128_000,
    "deepseek-reasoner": 128_000,
    "mistral-large": 128_000,
    "mistral-medium": 128_000,
    "mistral-small": 128_000,
    "codestral": 256_000,
    "llama-3.3": 128_000,
    "llama-3.1": 128_000,
}

_lock = threading.Lock()
_table: dict[str, int] = {normalize_model_id(k): v for k, v in _KNOWN.items()}


def set_context_window(model_id: str, tokens: int) -> None:
    """Declare (or replace) the context window of `model_id` and the ids that start with it, in tokens."""
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
        raise ValueError(f"a context window is a positive number of tokens, got {tokens!r}")
    with _lock:
        _table[normalize_model_id(model_id)] = tokens


def context_window_of(model: Any) -> int | None:
    """The context window of `model` (an object with `model_id`, or an id) in tokens, or None when unknown."""
    own = getattr(model, "context_window", None)
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return own
    ask_server = getattr(model, "server_context_window", None)
    if callable(ask_server):
        served = ask_server()
        if isinstance(served, int) and not isinstance(served, bool) and served > 0:
            return served
    model_id = model if isinstance(model, str) else getattr(model, "model_id", "")
    if not model_id:
        return None
    name = normalize_model_id(str(model_id))
    best: str | None = None
    with _lock:
        for key in _table:
            if name == key or (name.startswith(key) and name[len(key)] in "-:@_"):
                if best is None or len(key) > len(best):
                    best = key
        return None if best is None else _table[best]


def reserved_output_tokens(model: Any, window: int) -> int:
    """Tokens to keep free for the reply: the model's own reply cap when it has one, else 1/8 of the window.

    A request whose prompt plus reply cap exceeds the window is refused by some providers (Anthropic), so the
    reply cap counts against the budget; capped at 8,192 when guessed, so large windows are not wasted.
    """
    for source in (getattr(model, "generate_kwargs", None) or {}, getattr(model, "kwargs", None) or {}):
        for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and value > 0:
                return min(value, window // 2)
    own = getattr(model, "max_tokens", None)
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return min(own, window // 2)
    return min(8_192, window // 8)


def server_props_window(api_base: str | None, timeout: float = 2.0) -> tuple[int | None, bool]:
    """`(n_ctx, answered)` from llama.cpp's `GET /props` at the root of a loopback `api_base`.

    `answered` is False when nothing could be asked (no api_base, not this machine, connection refused), so
    the caller may ask again later. llama.cpp's server reports the context it was started with
    (`default_generation_settings.n_ctx`, per slot); the model's training length (`n_ctx_train`) is not used:
    the server's own setting is what a request must fit.
    """
    if not api_base:
        return None, False
    parts = urlsplit(api_base)
    host = (parts.hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None, False
    root = api_base.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/props", timeout=timeout) as response:  # noqa: S310 - loopback only
            data = json.loads(response.read() or b"null")
    except urllib.error.HTTPError:
        return None, True  # the server answered: it has no such route
    except (OSError, ValueError):
        return None, False
    settings = data.get("default_generation_settings") if isinstance(data, dict) else None
    for source in (settings, data):
        n_ctx = source.get("n_ctx") if isinstance(source, dict) else None
        if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0:
            return n_ctx, True
    return None, True
