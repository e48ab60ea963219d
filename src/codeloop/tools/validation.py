"""Checking a model's JSON arguments against a tool's schema with pydantic, and saying what to fix."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, ValidationError, with_config
from pydantic.json_schema import PydanticJsonSchemaWarning
from typing_extensions import NotRequired, Required

from ..errors import AgentToolCallError, ToolDefinitionError
from .schema import _TYPED_DICT, LenientSchemaGenerator, clean_schema, describe_schema, schema_to_annotation

__all__ = ["ArgumentValidator", "type_adapter"]


def _arguments_config() -> ConfigDict:
    return ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ArgumentValidator:
    """Validates and coerces a tool's JSON arguments with one pydantic `TypeAdapter` over a typed dict.

    Arguments the caller left out stay out (the function's own defaults apply), unknown ones are refused,
    and JSON objects become the enum members, dataclasses and pydantic models the hints ask for.
    """

    def __init__(
        self, adapter: TypeAdapter[Any], descriptions: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self._adapter = adapter
        self._descriptions = descriptions or {}

    @classmethod
    def for_fields(cls, fields: dict[str, Any], *, label: str) -> ArgumentValidator:
        """Build from `name -> Required[...] / NotRequired[...]` annotations."""
        typed = with_config(_arguments_config())(_TYPED_DICT("Arguments", fields))
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(typed)
        except Exception as exc:
            culprit = _find_unsupported(fields)
            where = f"argument '{culprit}' of " if culprit else ""
            raise ToolDefinitionError(
                f"Tool function '{label}': the type hint of {where}the function is not supported ({exc})."
            ) from exc
        return cls(adapter)

    @classmethod
    def for_inputs(
        cls,
        inputs: Mapping[str, Mapping[str, Any]],
        required: list[str],
        defs: Mapping[str, Any] | None = None,
    ) -> ArgumentValidator:
        """Build from a tool's JSON Schema `inputs` (tools without Python type hints)."""
        fields = {
            name: (Required if name in required else NotRequired)[schema_to_annotation(entry, defs)]
            for name, entry in inputs.items()
        }
        typed = with_config(_arguments_config())(_TYPED_DICT("Arguments", fields))
        return cls(TypeAdapter(typed), {name: dict(entry) for name, entry in inputs.items()})

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema as pydantic writes it, cleaned by `clean_schema`."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            raw = self._adapter.json_schema(schema_generator=LenientSchemaGenerator)
        return clean_schema(raw)

    def validate(
        self, tool_name: str, arguments: Any, inputs: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The arguments, validated and coerced; `AgentToolCallError` listing every problem otherwise."""
        if not isinstance(arguments, Mapping):
            raise AgentToolCallError(
                f"Tool '{tool_name}' takes its arguments as a JSON object "
                f"({{{', '.join(repr(n) + ': ...' for n in inputs)}}}); got {type(arguments).__name__} "
                f"{_preview(arguments)}."
            )
        try:
            return dict(self._adapter.validate_python(dict(arguments)))
        except ValidationError as exc:
            raise AgentToolCallError(_validation_message(tool_name, exc, inputs)) from None


def type_adapter(annotation: Any) -> TypeAdapter[Any]:
    """A `TypeAdapter` for any hint; arbitrary classes are checked with `isinstance`.

    pydantic refuses a `config` for models, dataclasses and typed dicts (they carry their own), so the
    permissive config is only added when the plain adapter cannot be built.
    """
    try:
        return TypeAdapter(annotation)
    except PydanticSchemaGenerationError:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))


def _find_unsupported(fields: dict[str, Any]) -> str | None:
    for name, annotation in fields.items():
        try:
            type_adapter(annotation)
        except Exception:
            return name
    return None


def _preview(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validation_message(tool_name: str, exc: ValidationError, inputs: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [f"Invalid arguments for tool '{tool_name}':"]
    errors = exc.errors(include_url=False)
    # pydantic reports a value that fits no branch of a union once per branch, each with the branch's tag
    # appended to the location; those are folded back into one line about the value.
    groups: dict[tuple[str, int], list[Any]] = {}
    for error in errors:
        where = error.get("loc", ())
        groups.setdefault((str(where[0]) if where else "", id(error.get("input"))), []).append(error)
    done: set[int] = set()
    for error in errors:
        if id(error) in done:
            continue
        loc = [str(p) for p in error.get("loc", ())]
        arg = loc[0] if loc else ""
        entry = inputs.get(arg)
        expected = f" (expected {describe_schema(entry)})" if entry is not None else ""
        kind = error.get("type")
        siblings = groups.get((arg, id(error.get("input"))), [error])
        if kind not in ("missing", "extra_forbidden") and len(siblings) > 1:
            done.update(id(e) for e in siblings)
            common = _common_prefix([[str(p) for p in e.get("loc", ())] for e in siblings])
            path = _render_path(common or loc[:1])
            got = _preview(error.get("input"))
            if len(common) <= 1:
                lines.append(f"- '{path}': got {got}, which fits none of the allowed types{expected}.")
            else:
                reasons = "; ".join(dict.fromkeys(str(e.get("msg", "")) for e in siblings))
                lines.append(f"- '{path}': got {got}, which fits none of the allowed types ({reasons}).")
            continue
        path = _render_path(loc)
        if kind == "missing" and len(loc) == 1:
            lines.append(f"- '{arg}': missing required argument{expected}.")
        elif kind == "extra_forbidden" and len(loc) == 1:
            known = ", ".join(repr(n) for n in inputs) or "none"
            lines.append(f"- '{arg}': unexpected argument; this tool takes: {known}.")
        else:
            got = f", got {_preview(error.get('input'))}" if kind != "missing" else ""
            lines.append(f"- '{path}': {error.get('msg', 'invalid value')}{got}{expected}.")
    return "\n".join(lines)


def _render_path(loc: list[str]) -> str:
    if not loc:
        return ""
    return loc[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])


def _common_prefix(paths: list[list[str]]) -> list[str]:
    prefix: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return prefix
