"""How a durable run's effects and results are kept as JSON in its journal, and read back (see `durable`).

Results are encoded with the sandbox wire format's JSON encoding (a value it cannot carry exactly is kept as its
type and repr, flagged); errors as their type name and message, rebuilt as a builtin exception of that type when
it is one, so code catching `ValueError` behaves the same on replay.
"""

from __future__ import annotations

import builtins
from typing import Any

from .effects import CallModel

__all__ = [
    "decode_value",
    "encode_error",
    "encode_value",
    "execution_payload",
    "execution_result",
    "is_exact",
    "model_request",
    "rebuild_error",
    "tool_request",
]


def encode_value(value: Any) -> Any:
    """`value` as JSON (the wire format's encoding; what it cannot carry becomes its type and repr, flagged)."""
    from .executors.worker.protocol import encode_or_describe

    return encode_or_describe(value)


def decode_value(data: Any) -> Any:
    """The value `encode_value` encoded."""
    from .executors.worker.protocol import decode_value

    return decode_value(data)


def is_exact(data: Any) -> bool:
    """False when the value could not be stored exactly and only its type and repr were kept."""
    return not (isinstance(data, dict) and data.get("$t") == "repr")


def encode_error(exc: BaseException) -> dict[str, Any]:
    """`exc` as JSON: its type name, message and the logs it carries."""
    return {"type": type(exc).__name__, "message": str(exc), "logs": getattr(exc, "logs", None)}


def rebuild_error(data: dict[str, Any]) -> Exception:
    """An exception with the recorded type name and message: a builtin type when it is one, else a look-alike,
    so that code catching `ValueError` and text naming the type read the same as in the first run."""
    name, message = str(data.get("type", "Exception")), str(data.get("message", ""))
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # a builtin exception with another constructor signature
            pass
    return type(name, (Exception,), {"__module__": "codeloop.durable.recorded"})(message)


def execution_payload(result: Any) -> dict[str, Any]:
    """A code run's result as JSON: output, logs, whether it is the final answer, its rendering, variables."""
    from .executors.worker.protocol import MARKER, encode_value, type_name

    rendered = getattr(result, "output_repr", None)
    try:
        output = encode_value(result.output)
    except (
        Exception
    ):  # kept as the text rendered inside the step: the host never runs an agent-defined __repr__
        output = {MARKER: "repr", "type": type_name(result.output), "v": rendered or "<not storable as JSON>"}
    return {
        "output": output,
        "logs": result.logs,
        "is_final_answer": bool(result.is_final_answer),
        "output_repr": rendered,
        "variables": getattr(result, "variables", ""),
    }


def execution_result(data: dict[str, Any], fresh: Any) -> Any:
    """The recorded code result; its output from the re-executed `fresh` result when only a repr was kept."""
    from .executors.base import ExecutionResult

    output = decode_value(data["output"]) if is_exact(data["output"]) or fresh is None else fresh.output
    result = ExecutionResult(output, data["logs"], data["is_final_answer"], data.get("variables") or "")
    if data.get("output_repr") is not None:
        result.output_repr = data["output_repr"]  # type: ignore[attr-defined]
    return result


def model_request(effect: CallModel) -> dict[str, Any]:
    """What identifies a model call in the journal (its key is the hash of this)."""
    return {
        "messages": [m.to_dict() for m in effect.messages],  # the key's JSON escapes lone surrogates itself
        "stop": effect.stop,
        "tools": effect.tools,
        "response_format": effect.response_format,
    }


def tool_request(name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """What identifies a tool call in the journal (its key is the hash of this)."""
    return {"tool": name, "args": encode_value(list(args)), "kwargs": encode_value(dict(kwargs))}
