"""Tool schemas: from Python signatures + docstrings to JSON Schema, and from JSON Schema back to validators.

A function's type hints are turned into JSON Schema by pydantic and its Google-style (or NumPy/reST)
docstring is read by docstring-parser; neither is parsed by hand here. The same pydantic `TypeAdapter`
that writes the schema validates the arguments a model sends, so the schema shown and the check applied
cannot drift apart.

A tool's `inputs` map each argument name to a JSON Schema fragment with a `description`. Two markers
from smolagents' format are kept because users write them by hand: `"type": "any"` (no constraint) and
`"nullable": True` (the value may be null). `to_json_schema` turns them into standard JSON Schema.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import json
import keyword
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

import docstring_parser
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic.json_schema import GenerateJsonSchema, PydanticJsonSchemaWarning
from typing_extensions import NotRequired, Required, TypedDict

from ..errors import AgentToolCallError, ToolDefinitionError

__all__ = [
    "OUTPUT_TYPES",
    "FunctionDescription",
    "ArgumentValidator",
    "describe_function",
    "clean_schema",
    "to_json_schema",
    "schema_to_annotation",
    "json_type_name",
    "describe_schema",
    "render_annotation",
    "render_schema_type",
    "check_tool_name",
    "is_jsonable",
    "type_adapter",
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


class _LenientSchemaGenerator(GenerateJsonSchema):
    """Writes `{}` (any value) for types JSON Schema cannot express, such as arbitrary classes."""

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
        return {}


def _arguments_config() -> ConfigDict:
    return ConfigDict(extra="forbid", arbitrary_types_allowed=True)


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


def _collapse_optional(schema: dict[str, Any]) -> dict[str, Any]:
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


def is_jsonable(value: Any) -> bool:
    """Whether `value` survives a JSON round trip unchanged (so it can appear in a schema as a default)."""
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass
class FunctionDescription:
    """Everything a tool needs that can be read off a function's signature and docstring."""

    description: str
    inputs: dict[str, dict[str, Any]]
    required: list[str]
    output_type: str
    output_schema: dict[str, Any] | None
    output_description: str | None
    annotations: dict[str, str]
    """Argument name -> type hint as it reads in a stub."""
    return_annotation: str | None
    defaults: dict[str, Any]
    """Argument name -> the function's own default value (any Python object)."""
    validator: ArgumentValidator
    coerced: dict[str, Any]
    """Arguments whose hint holds an enum, dataclass or pydantic model -> that hint; code calls get them
    converted too, so a dict written in a code action arrives as the model instance."""
    defs: dict[str, Any]
    """Recursive definitions that `$ref`s in `inputs` point to (at the root of the parameters schema)."""


def _function_label(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _resolve_hints(func: Callable[..., Any], label: str) -> dict[str, Any]:
    target = inspect.unwrap(func)
    if inspect.ismethod(target):
        target = target.__func__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable string annotation, TypeError for bad ones
        raise ToolDefinitionError(
            f"Tool function '{label}': its type hints cannot be resolved ({type(exc).__name__}: {exc}). "
            "Make every name used in an annotation importable at module level."
        ) from exc


def _needs_coercion(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, (enum.Enum, BaseModel)) or dataclasses.is_dataclass(annotation)
    return any(_needs_coercion(a) for a in typing.get_args(annotation) if a is not Ellipsis)


def describe_function(
    func: Callable[..., Any],
    *,
    description: str | None = None,
    fallback_doc: str | None = None,
) -> FunctionDescription:
    """Read a tool's schema off `func`'s type hints and docstring; `ToolDefinitionError` names what is missing.

    `description` overrides the docstring's summary (the docstring must then still describe the arguments).
    `fallback_doc` is used when `func` has no docstring (a `Tool` subclass's class docstring).
    """
    label = _function_label(func)
    # Not inspect.getdoc: it would hand a Tool subclass's undocumented forward the base class's docstring.
    own_doc = getattr(func, "__doc__", None)
    doc = (
        inspect.cleandoc(own_doc) if isinstance(own_doc, str) and own_doc.strip() else None
    ) or fallback_doc
    if not doc and description is None:
        raise ToolDefinitionError(
            f"Tool function '{label}' has no docstring. Add one: a sentence saying what the tool does, "
            "then an 'Args:' section with one line per argument ('name: what it means')."
        )
    # A leading newline keeps a docstring that opens straight with "Args:" from being read as a summary.
    parsed = docstring_parser.parse("\n" + (doc or ""))
    summary = "\n\n".join(p for p in (parsed.short_description, parsed.long_description) if p)
    final_description = (description if description is not None else summary).strip()
    if not final_description:
        raise ToolDefinitionError(
            f"Tool function '{label}' has no description: its docstring must start with a sentence "
            "saying what the tool does (or pass description=... to @tool)."
        )
    arg_docs = {
        p.arg_name.lstrip("*"): (p.description or "").strip()
        for p in parsed.params
        if p.args and p.args[0] != "attribute"
    }
    signature = inspect.signature(func)
    hints = _resolve_hints(func, label)
    fields: dict[str, Any] = {}
    annotations: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    required: list[str] = []
    coerced: dict[str, Any] = {}
    for param in signature.parameters.values():
        name = param.name
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"Tool function '{label}' takes {star}{name}, which a model cannot be told how to fill. "
                "List each argument explicitly with a type hint."
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"Argument '{name}' of tool function '{label}' is positional-only; tools are called "
                "with keyword arguments, so remove the '/' from the signature."
            )
        if name not in hints:
            raise ToolDefinitionError(
                f"Argument '{name}' of tool function '{label}' has no type hint. Add one, e.g. `{name}: str`."
            )
        if not arg_docs.get(name):
            raise ToolDefinitionError(
                f"Argument '{name}' of tool function '{label}' is not described in its docstring. "
                f"Add it under 'Args:' as `{name}: what it means`."
            )
        hint = hints[name]
        annotations[name] = render_annotation(hint)
        if _needs_coercion(hint):
            coerced[name] = hint
        field = Annotated.__class_getitem__((hint, Field(description=arg_docs[name])))  # type: ignore[attr-defined]
        if param.default is inspect.Parameter.empty:
            required.append(name)
            fields[name] = Required[field]
        else:
            defaults[name] = param.default
            fields[name] = NotRequired[field]
    unknown = sorted(set(arg_docs) - set(signature.parameters))
    if unknown:
        raise ToolDefinitionError(
            f"The docstring of tool function '{label}' describes {', '.join(repr(u) for u in unknown)}, "
            f"which {'is not an argument' if len(unknown) == 1 else 'are not arguments'} of the function "
            f"(its arguments: {', '.join(signature.parameters) or 'none'})."
        )
    validator = ArgumentValidator.for_fields(fields, label=label)
    arguments_schema = validator.json_schema()
    properties = arguments_schema.get("properties", {})
    inputs: dict[str, dict[str, Any]] = {}
    for name in signature.parameters:
        entry = _collapse_optional(properties.get(name, {}))
        entry.setdefault("description", arg_docs[name])
        if not ({"type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref"} & entry.keys()):
            entry["type"] = "any"
        if name in defaults:
            if is_jsonable(_json_default(defaults[name])):
                entry["default"] = _json_default(defaults[name])
            else:
                entry["nullable"] = True
        inputs[name] = _ordered(entry)
    output_type, output_schema, return_annotation = _describe_return(hints, label)
    returns = parsed.returns.description.strip() if parsed.returns and parsed.returns.description else None
    return FunctionDescription(
        description=final_description,
        inputs=inputs,
        required=required,
        output_type=output_type,
        output_schema=output_schema,
        output_description=returns,
        annotations=annotations,
        return_annotation=return_annotation,
        defaults=defaults,
        validator=validator,
        coerced=coerced,
        defs=arguments_schema.get("$defs", {}),
    )


def _json_default(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    """Type first, then the description, then the rest: the order a person reading the schema expects."""
    head: dict[str, Any] = {k: entry[k] for k in ("type", "description") if k in entry}
    return {**head, **{k: v for k, v in entry.items() if k not in head}}


def _describe_return(hints: dict[str, Any], label: str) -> tuple[str, dict[str, Any] | None, str | None]:
    if "return" not in hints:
        return "any", None, None
    annotation = hints["return"]
    rendered = render_annotation(annotation)
    if annotation is Any:
        return "any", None, rendered
    try:
        adapter = type_adapter(annotation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            schema = adapter.json_schema(mode="serialization", schema_generator=_LenientSchemaGenerator)
    except Exception:  # a return type pydantic cannot model at all: still a fine tool, just untyped
        kind = "object" if isinstance(annotation, type) else "any"
        return kind, None, rendered
    schema = clean_schema(schema)
    kind = json_type_name(schema)
    if not schema:
        kind = "object" if isinstance(annotation, type) else "any"
    return kind, (schema or None), rendered


# ---------------------------------------------------------------------------------------- validation


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
            raw = self._adapter.json_schema(schema_generator=_LenientSchemaGenerator)
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
