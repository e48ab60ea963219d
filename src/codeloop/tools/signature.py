"""From a Python function to a tool schema: type hints through pydantic, the docstring through docstring-parser.

Neither is parsed by hand here. The pydantic `TypeAdapter` that writes the arguments' JSON Schema is the one
that later validates what a model sends, so the schema shown and the check applied cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import docstring_parser
from pydantic import BaseModel, Field
from pydantic.json_schema import PydanticJsonSchemaWarning
from typing_extensions import NotRequired, Required

from ..errors import ToolDefinitionError
from .schema import (
    LenientSchemaGenerator,
    clean_schema,
    collapse_optional,
    is_jsonable,
    json_type_name,
    render_annotation,
)
from .validation import ArgumentValidator, type_adapter

__all__ = ["FunctionDescription", "describe_function"]


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
        entry = collapse_optional(properties.get(name, {}))
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
            schema = adapter.json_schema(mode="serialization", schema_generator=LenientSchemaGenerator)
    except Exception:  # a return type pydantic cannot model at all: still a fine tool, just untyped
        kind = "object" if isinstance(annotation, type) else "any"
        return kind, None, rendered
    schema = clean_schema(schema)
    kind = json_type_name(schema)
    if not schema:
        kind = "object" if isinstance(annotation, type) else "any"
    return kind, (schema or None), rendered
