"""Test doubles that speak the real wire: a scripted LLM server on 127.0.0.1 and an in-process ScriptedModel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Fault
    from .scripted import ScriptedModel, ScriptRequest, normalize_reply
    from .server import ScriptedLLMServer
    from .tiny_lm import ScriptedLogits, tiny_chat_model

__all__ = [
    "ScriptedModel",
    "ScriptRequest",
    "ScriptedLLMServer",
    "normalize_reply",
    "Fault",
    "tiny_chat_model",
    "ScriptedLogits",
]

_WHERE = {
    "ScriptedModel": ".scripted",
    "ScriptRequest": ".scripted",
    "normalize_reply": ".scripted",
    "ScriptedLLMServer": ".server",
    "Fault": ".faults",
    "tiny_chat_model": ".tiny_lm",
    "ScriptedLogits": ".tiny_lm",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
