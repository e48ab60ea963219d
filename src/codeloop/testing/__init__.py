"""Test doubles that speak the real wire: a scripted LLM server on 127.0.0.1 and an in-process ScriptedModel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scripted import ScriptedModel, ScriptRequest, normalize_reply
    from .server import ScriptedLLMServer

__all__ = ["ScriptedModel", "ScriptRequest", "ScriptedLLMServer", "normalize_reply"]

_WHERE = {
    "ScriptedModel": ".scripted",
    "ScriptRequest": ".scripted",
    "normalize_reply": ".scripted",
    "ScriptedLLMServer": ".server",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
