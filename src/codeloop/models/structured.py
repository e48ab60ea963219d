"""Structured outputs: the JSON Schema of a code action and helpers for `response_format`.

`response_format` follows the OpenAI shape everywhere in codeloop; each adapter translates it to its provider
(a forced tool for Anthropic and Bedrock, a grammar for Hugging Face inference) or refuses it clearly.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CODE_ACTION_SCHEMA",
    "code_action_response_format",
    "json_schema_response_format",
    "parse_code_action",
    "schema_of",
]

CODE_ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "thought": {
            "type": "string",
            "description": "Your reasoning about what to do next and why.",
        },
        "code": {
            "type": "string",
            "description": "The Python code to run now. Call final_answer(...) in it to finish.",
        },
    },
    "required": ["thought", "code"],
    "additionalProperties": False,
}
"""What `CodeAgent(use_structured_outputs=True)` asks for: `{"thought": ..., "code": ...}`."""


def json_schema_response_format(
    schema: dict[str, Any], name: str = "response", strict: bool = True
) -> dict[str, Any]:
    """A `response_format` asking for JSON that fits `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


def code_action_response_format() -> dict[str, Any]:
    """The `response_format` for structured code actions."""
    return json_schema_response_format(CODE_ACTION_SCHEMA, name="code_action")


def schema_of(response_format: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and JSON Schema a `response_format` asks for (`json_object` means any object)."""
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        if "schema" not in spec:
            raise ValueError(
                "response_format of type 'json_schema' needs {'json_schema': {'name': ..., 'schema': {...}}}"
            )
        return str(spec.get("name") or "response"), dict(spec["schema"])
    if kind == "json_object":
        return "response", {"type": "object"}
    raise ValueError(
        f"response_format type {kind!r} is not supported; use {{'type': 'json_schema', 'json_schema': "
        "{'name': ..., 'schema': {...}}} or {'type': 'json_object'}"
    )


def parse_code_action(text: str) -> tuple[str, str]:
    """`(thought, code)` from a structured code action; `ValueError` saying what was wrong and what is expected."""
    expected = 'a JSON object {"thought": "...", "code": "..."}'
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON ({exc}); expected {expected}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ValueError(f"the reply has no string field 'code'; expected {expected}")
    thought = data.get("thought")
    return (thought if isinstance(thought, str) else ""), data["code"]
