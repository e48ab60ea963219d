"""JSON Schema for tools: cleaning pydantic's output, reading schemas back into Python types, and showing
both as Python stubs and plain English.

A tool's `inputs` map each argument name to a JSON Schema fragment with a `description`. Two markers
from smolagents' format are kept because users write them by hand: `"type": "any"` (no constraint) and
`"nullable": True` (the value may be null). `to_json_schema` turns them into standard JSON Schema.
Functions become schemas in `signature`; arguments are checked against them in `validation`.
"""

from __future__ import annotations

import copy
import json
import keyword
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, with_config
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import NotRequired, Required, TypedDict

from ..errors import ToolDefinitionError

__all__ = [
    "OUTPUT_TYPES",
    "python_identifier",
    "clean_schema",
    "tool_inputs_from_schema",
    "to_json_schema",
    "schema_to_annotation",
    "json_type_name",
    "describe_schema",
    "render_annotation",
    "render_schema_type",
    "check_tool_name",
    "is_jsonable",
]

OUTPUT_TYPES = frozenset(
    {"string", "integer", "number", "boolean", "array", "object", "null", "any", "image", "audio"}
)
"""Type names accepted for `output_type` and for `"type"` in `inputs` (image/audio kept for smolagents)."""

_SIMPLE_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}
_PY_NAMES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
# Keys that hold one sub-schema, a list of them, or a name -> sub-schema map; everything else is data.
_ONE_SCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


# Typed as Any: the functional TypedDict form is built at run time from names mypy cannot see.
_TYPED_DICT: Any = TypedDict


class LenientSchemaGenerator(GenerateJsonSchema):
    """Writes `{}` (any value) for types JSON Schema cannot express, such as arbitrary classes."""

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
        return {}


# --------------------------------------------------------------------------------------------- schemas


def _walk(schema: Any, visit: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """Apply `visit` to `schema` and every sub-schema below it, bottom-up, returning a new tree."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ONE_SCHEMA and isinstance(value, dict):
            out[key] = _walk(value, visit)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_walk(v, visit) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _walk(v, visit) for k, v in value.items()}
        elif key == "items" and isinstance(value, list):
            out[key] = [_walk(v, visit) for v in value]
        else:
            out[key] = value
    return visit(out)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles and inline `$ref`s; only recursive definitions stay in `$defs`.

    Several providers reject or mishandle `$ref`, and a model reads an inlined schema more easily.
    """
    defs = dict(schema.get("$defs") or schema.get("definitions") or {})

    def strip_titles(node: dict[str, Any]) -> dict[str, Any]:
        node.pop("title", None)
        return node

    defs = {name: _walk(d, strip_titles) for name, d in defs.items()}
    body = _walk({k: v for k, v in schema.items() if k not in ("$defs", "definitions")}, strip_titles)
    kept: dict[str, Any] = {}

    def inline(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(v, stack) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and _ref_name(ref) in defs:
            name = _ref_name(ref)
            siblings = {k: inline(v, stack) for k, v in node.items() if k != "$ref"}
            if name in stack:
                kept[name] = defs[name]
                return {"$ref": f"#/$defs/{name}", **siblings}
            target = inline(copy.deepcopy(defs[name]), (*stack, name))
            return {**target, **siblings}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: inline(v, stack) for k, v in value.items()}
            elif key in _ONE_SCHEMA or key in _SCHEMA_LISTS or key == "items":
                out[key] = inline(value, stack)
            else:
                out[key] = value
        return out

    result: dict[str, Any] = inline(body, ())
    if kept:
        # Recursive definitions are referenced from the root, so they must be complete there.
        pending = dict(kept)
        while pending:
            name, definition = pending.popitem()
            kept[name] = inline(definition, (name,))
        result["$defs"] = kept
    return result


_TYPE_KEYS = frozenset({"type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref", "properties", "items"})


def tool_inputs_from_schema(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A tool's `inputs` from the JSON Schema of its arguments (an object schema already passed through
    `clean_schema`), for tools described by someone else (MCP servers, LangChain).

    Each argument gets a description if it has none, `"type": "any"` if nothing says what it takes, and
    `"nullable": True` if it is optional without a default, so a None given for it can be dropped before the call.
    """
    required = set(schema.get("required") or [])
    inputs: dict[str, dict[str, Any]] = {}
    for arg, entry in (schema.get("properties") or {}).items():
        # A boolean sub-schema (`true`) accepts anything: an empty entry, typed "any" below.
        entry = dict(entry) if isinstance(entry, dict) else {}
        entry.setdefault("description", f"The {arg} argument.")
        if not _TYPE_KEYS & entry.keys():
            entry["type"] = "any"
        if arg not in required and "default" not in entry:
            entry["nullable"] = True
        inputs[arg] = entry
    return inputs


def collapse_optional(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` with a plain `type` in X becomes X + `"nullable": True` (the smolagents shape)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2:
        return schema
    nulls = [o for o in options if o == {"type": "null"}]
    others = [o for o in options if o != {"type": "null"}]
    if len(nulls) != 1 or len(others) != 1 or not isinstance(others[0].get("type"), str):
        return schema
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**others[0], **merged, "nullable": True}


def to_json_schema(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Standard JSON Schema for one `inputs` entry: `"any"` dropped, `"nullable"` folded into the type."""
    schema = dict(entry)
    nullable = bool(schema.pop("nullable", False))
    if schema.get("type") in ("any", "image", "audio"):
        del schema["type"]
    if not nullable:
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
        if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    if isinstance(kind, list):
        if "null" not in kind:
            schema["type"] = [*kind, "null"]
        return schema
    if not {k for k in schema if k not in ("description", "default")}:
        return schema  # already accepts anything, null included
    annotations: dict[str, Any] = {k: schema.pop(k) for k in ("description", "default") if k in schema}
    return {"anyOf": [schema, {"type": "null"}], **annotations}


def json_type_name(schema: Mapping[str, Any]) -> str:
    """The one type name (as in `OUTPUT_TYPES`) that best summarises `schema`."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind if kind in OUTPUT_TYPES else "any"
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        return non_null[0] if len(non_null) == 1 and non_null[0] in OUTPUT_TYPES else "any"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            names = {json_type_name(o) for o in options if o != {"type": "null"}}
            return names.pop() if len(names) == 1 else "any"
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        names = {_value_type_name(v) for v in values}
        return names.pop() if len(names) == 1 else "any"
    if "properties" in schema or "$ref" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "any"


def _value_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "any"


def describe_schema(schema: Mapping[str, Any], depth: int = 0) -> str:
    """A short plain-English reading of a schema, for error messages and prompts ("array of integer")."""
    nullable = schema.get("nullable") is True
    text = _describe(schema, depth)
    return f"{text} or null" if nullable and not text.endswith("or null") else text


def _describe(schema: Mapping[str, Any], depth: int) -> str:
    if "const" in schema:
        return repr(schema["const"])
    if isinstance(schema.get("enum"), list):
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " or ".join(describe_schema(o, depth) for o in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_describe({**schema, "type": k}, depth) for k in kind)
    if "$ref" in schema:
        return f"object ({_ref_name(schema['$ref'])})"
    if kind == "array" or "items" in schema:
        items = schema.get("items")
        return (
            f"array of {describe_schema(items, depth + 1)}" if isinstance(items, dict) and items else "array"
        )
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        if isinstance(props, dict) and props and depth < 2:
            required = set(schema.get("required", []))
            fields = ", ".join(
                f"{name}{'' if name in required else '?'}: {describe_schema(sub, depth + 1)}"
                for name, sub in props.items()
            )
            return f"object {{{fields}}}"
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object with {describe_schema(extra, depth + 1)} values"
        return "object"
    if isinstance(kind, str) and kind != "any":
        return kind
    return "any value"


# --------------------------------------------------------------------------------- JSON Schema -> types


def schema_to_annotation(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> Any:
    """A Python type that pydantic can validate JSON values against, read from a JSON Schema fragment.

    Used for tools described by hand or by an MCP server, which have a schema but no Python types.
    Objects stay dicts (typed dicts), so validated arguments keep the shape the schema describes.
    """
    definitions = dict(defs or {})
    definitions.update(schema.get("$defs") or {})
    annotation = _annotation(schema, definitions, ())
    return typing.Optional[annotation] if schema.get("nullable") is True else annotation  # noqa: UP045


def _annotation(schema: Any, defs: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    if not isinstance(schema, Mapping) or not schema:
        return Any
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = _ref_name(ref)
        if name in seen or name not in defs:
            return Any  # recursive or unresolvable: accept the value as it is rather than loop
        return _annotation(defs[name], defs, (*seen, name))
    if "const" in schema:
        return _literal([schema["const"]])
    if isinstance(schema.get("enum"), list):
        return _literal(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _union([_annotation(o, defs, seen) for o in schema[key]])
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return _annotation(all_of[0], defs, seen)
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([_annotation({**schema, "type": k}, defs, seen) for k in kind])
    if kind in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[kind]
    if kind == "array" or (kind is None and "items" in schema):
        items = schema.get("items")
        return list[_annotation(items, defs, seen)] if isinstance(items, Mapping) else list[Any]  # type: ignore[misc]
    if kind == "object" or (kind is None and "properties" in schema):
        return _object_annotation(schema, defs, seen)
    return Any


def _literal(values: list[Any]) -> Any:
    try:
        hash(tuple(values))
    except TypeError:
        return Any
    return Literal.__getitem__(tuple(values))


def _union(options: list[Any]) -> Any:
    if Any in options:
        return Any
    return Union.__getitem__(tuple(options)) if len(options) > 1 else options[0]


def _object_annotation(schema: Mapping[str, Any], defs: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    props = schema.get("properties")
    extra = schema.get("additionalProperties", True)
    if not isinstance(props, Mapping) or not props:
        if isinstance(extra, Mapping) and extra:
            return dict[str, _annotation(extra, defs, seen)]  # type: ignore[misc]
        return dict[str, Any]
    required = set(schema.get("required") or [])
    fields = {
        name: (Required if name in required else NotRequired)[_annotation(sub, defs, seen)]
        for name, sub in props.items()
    }
    typed = _TYPED_DICT("JsonObject", fields)
    return with_config(ConfigDict(extra="forbid" if extra is False else "allow"))(typed)


# ------------------------------------------------------------------------------------- type rendering


def render_annotation(annotation: Any) -> str:
    """How a type hint reads in a Python stub: `list[int]`, `str | None`, `Literal['a', 'b']`, `Point`."""
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return render_annotation(args[0])
    if origin is Union or origin is types.UnionType:
        return " | ".join(render_annotation(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        if not args:
            return name
        return f"{name}[{', '.join('...' if a is Ellipsis else render_annotation(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def render_schema_type(schema: Mapping[str, Any]) -> str:
    """How a JSON Schema fragment reads as a Python type hint in a stub."""
    text = _render_schema(schema)
    if schema.get("nullable") is True and text not in ("Any", "None") and not text.endswith("| None"):
        return f"{text} | None"
    return text


def _render_schema(schema: Mapping[str, Any]) -> str:
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if isinstance(schema.get("enum"), list):
        return f"Literal[{', '.join(repr(v) for v in schema['enum'])}]"
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(dict.fromkeys(render_schema_type(o) for o in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_render_schema({**schema, "type": k}) for k in kind)
    if kind in _PY_NAMES:
        return _PY_NAMES[kind]
    if kind == "array" or "items" in schema:
        items = schema.get("items")
        return f"list[{render_schema_type(items)}]" if isinstance(items, Mapping) and items else "list"
    if kind == "object" or "properties" in schema or "$ref" in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra and "properties" not in schema:
            return f"dict[str, {render_schema_type(extra)}]"
        return "dict"
    return "Any"


# ------------------------------------------------------------------------------ functions -> schemas


def check_tool_name(name: Any, where: str) -> str:
    """`name` if it can be called from Python code; a `ToolDefinitionError` explaining why not otherwise."""
    if not isinstance(name, str) or not name:
        raise ToolDefinitionError(f"{where} needs a `name` (a non-empty string); got {name!r}.")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ToolDefinitionError(
            f"{where}: tool name {name!r} is not a valid Python identifier, so code could not call it. "
            "Use letters, digits and underscores, not starting with a digit, and not a Python keyword."
        )
    return name


def python_identifier(name: str) -> str:
    """A tool name from elsewhere (MCP, LangChain) made callable from Python code (`get-time` -> `get_time`)."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = f"tool_{text}"
    return f"{text}_" if keyword.iskeyword(text) else text


def is_jsonable(value: Any) -> bool:
    """Whether `value` survives a JSON round trip unchanged (so it can appear in a schema as a default)."""
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False
