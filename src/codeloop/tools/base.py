"""`Tool`, the `@tool` decorator, and how a tool shows itself to a model.

A tool is a named callable with a description and a schema for its arguments. It can be written three ways:

    @tool
    def get_weather(city: str, days: int = 3) -> dict:
        '''Forecast for a city.

        Args:
            city: City name, e.g. "Paris".
            days: How many days ahead.
        '''

    class GetWeather(Tool):              # schema read off forward's hints and docstring
        name = "get_weather"
        def forward(self, city: str, days: int = 3) -> dict: ...

    class GetWeather(Tool):              # schema written by hand, as in smolagents
        name = "get_weather"
        description = "Forecast for a city."
        inputs = {"city": {"type": "string", "description": "City name"},
                  "days": {"type": "integer", "description": "Days ahead", "nullable": True}}
        output_type = "object"
        def forward(self, city, days=3): ...

A CodeAgent shows tools as Python stubs (`to_code_prompt`) and its code calls them with Python objects,
getting any Python object back. A ToolCallingAgent sends `to_function_spec()` and checks the model's JSON
with `validate_arguments` before calling. This module imports nothing heavy: pydantic and docstring-parser
load (through `schema`) only when the first tool is created.
"""

from __future__ import annotations

import copy
import functools
import inspect
import keyword
import re
import threading
from abc import ABCMeta
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..errors import AgentToolCallError, ToolDefinitionError

if TYPE_CHECKING:
    from .validation import ArgumentValidator

__all__ = ["Tool", "FunctionTool", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

_SETUP_LOCK = threading.RLock()
_SCHEMA_KEYWORDS = frozenset(
    {"type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref", "properties", "items"}
)
_PY_RETURN = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "null": "None",
}


class _ToolMeta(ABCMeta):
    """Finishes and checks every tool right after its `__init__`, even one that never calls `super().__init__`."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__call__(*args, **kwargs)
        instance._finish_definition()
        return instance


class Tool(metaclass=_ToolMeta):
    """Base class of every tool. Subclass it and write `forward`; see the module docstring for the styles.

    Class attributes (or instance attributes set in `__init__`):
      name: how the model calls the tool; a Python identifier. Defaults to the class name in snake_case.
      description: what the tool does. Defaults to forward's (or the class's) docstring summary.
      inputs: argument name -> JSON Schema with a "description"; optional arguments carry `"nullable": True`
        and/or a "default". Leave it out to derive it from forward's type hints and docstring `Args:`.
      output_type: "string", "integer", "number", "boolean", "array", "object", "null" or "any".
      output_schema: JSON Schema of the result, when known.

    Override `setup()` for expensive initialisation (loading a model); it runs once, before the first call.
    """

    name: str
    description: str
    inputs: dict[str, dict[str, Any]]
    output_type: str = "any"
    output_schema: dict[str, Any] | None = None
    output_description: str | None = None
    """What the result means (a docstring's `Returns:`), shown in the code prompt."""
    input_defs: dict[str, Any] | None = None
    """Definitions that `$ref`s inside `inputs` point to (`#/$defs/<name>`), for recursive structures."""
    requires_approval: bool = False
    """True: every call waits for a person's decision (the run pauses; see `codeloop.approval`)."""
    idempotent: bool = False
    """True when calling the tool twice with the same arguments does no more than calling it once (a lookup, a
    read, a PUT). A resumed run repeats such a call if it was in flight at the crash; any other tool's in-flight
    call is not repeated, and the code (or model) is told that it may or may not have happened."""
    unshareable_reason: str | None = None
    """Set by tools that cannot be saved or shared as code (they run elsewhere): why, and what to share
    instead. `save`, `to_dict(include_code=True)` and `push_to_hub` raise with it."""

    # Filled by `_finish_definition`.
    required_inputs: list[str]
    """Arguments a call must pass; the others are optional."""
    _annotations: dict[str, str]
    _stub_defaults: dict[str, str]
    _return_annotation: str
    _coerced: dict[str, Any]
    _validator: ArgumentValidator | None
    _validator_factory: Callable[[], ArgumentValidator]
    _setup_done: bool

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """What the tool does. Every tool overrides it; sync or `async def`."""
        raise ToolDefinitionError(f"Tool class {type(self).__name__} must define a `forward` method.")

    def setup(self) -> None:
        """Expensive one-time initialisation, run before the first call (thread-safe). Does nothing here."""

    # ------------------------------------------------------------------------------------ definition

    def _target(self) -> Callable[..., Any]:
        """The callable that does the work and whose signature describes the tool."""
        return self.forward

    def _explicit(self, attribute: str) -> bool:
        """Whether `attribute` was set by the tool's author (on a subclass or the instance), not by `Tool`."""
        if attribute in vars(self):
            return True
        return any(attribute in vars(k) for k in type(self).__mro__ if k not in (Tool, object))

    def _label(self) -> str:
        return f"Tool class {type(self).__name__}"

    def _fallback_doc(self) -> str | None:
        """Where the description and `Args:` come from when forward has no docstring: the class docstring."""
        own_doc = type(self).__doc__
        return inspect.cleandoc(own_doc) if own_doc else None

    def _finish_definition(self) -> None:
        from . import schema

        label = self._label()
        if type(self).forward is Tool.forward and self._target() == self.forward:
            raise ToolDefinitionError(f"{label} must define a `forward` method that does the tool's work.")
        name = getattr(self, "name", None) if self._explicit("name") else _snake_case(type(self).__name__)
        self.name = schema.check_tool_name(name, label)
        explicit_description = getattr(self, "description", None) if self._explicit("description") else None
        if explicit_description is not None and not (
            isinstance(explicit_description, str) and explicit_description.strip()
        ):
            raise ToolDefinitionError(f"{label}: `description` must be a non-empty string.")
        if self._explicit("inputs"):
            self._finish_from_inputs(explicit_description)
        else:
            self._finish_from_signature(explicit_description)
        if self.output_type not in schema.OUTPUT_TYPES:
            raise ToolDefinitionError(
                f"{label}: output_type {self.output_type!r} is not one of "
                f"{', '.join(sorted(schema.OUTPUT_TYPES))}."
            )
        if not isinstance(self.requires_approval, bool):
            raise ToolDefinitionError(
                f"{label}: requires_approval must be True or False, not {self.requires_approval!r}."
            )
        self._validator = None
        self._setup_done = getattr(self, "_setup_done", False)

    def _finish_from_signature(self, explicit_description: str | None) -> None:
        from .signature import describe_function

        found = describe_function(
            self._target(), description=explicit_description, fallback_doc=self._fallback_doc()
        )
        self.description = found.description
        self.inputs = found.inputs
        self.required_inputs = found.required
        if not self._explicit("output_type"):
            self.output_type = found.output_type
        if not self._explicit("output_schema"):
            self.output_schema = found.output_schema
        if not self._explicit("output_description"):
            self.output_description = found.output_description
        self._annotations = found.annotations
        self._stub_defaults = {k: _render_default(v) for k, v in found.defaults.items()}
        self._return_annotation = found.return_annotation or _PY_RETURN.get(self.output_type, "Any")
        self._coerced = found.coerced
        if found.defs:
            self.input_defs = found.defs
        validator = found.validator
        self._validator_factory = lambda: validator

    def _finish_from_inputs(self, explicit_description: str | None) -> None:
        from . import schema

        label = self._label()
        if explicit_description is None:
            class_doc = type(self).__doc__
            if not class_doc or not class_doc.strip():
                raise ToolDefinitionError(
                    f"{label} sets `inputs` but has no `description` (and no class docstring to take it from)."
                )
            explicit_description = inspect.cleandoc(class_doc)
        self.description = explicit_description.strip()
        raw_inputs = self.inputs
        if not isinstance(raw_inputs, dict):
            raise ToolDefinitionError(f"{label}: `inputs` must be a dict of argument name -> JSON Schema.")
        inputs: dict[str, dict[str, Any]] = copy.deepcopy(raw_inputs)
        for arg, entry in inputs.items():
            _check_input_entry(label, arg, entry)
        signature = inspect.signature(self._target())
        params: dict[str, inspect.Parameter] = {
            p.name: p
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        for arg in inputs:
            if arg not in params and not takes_any_keyword:
                raise ToolDefinitionError(
                    f"{label}: input '{arg}' has no matching parameter in forward"
                    f"{signature}. Add `{arg}` to forward's parameters or remove it from `inputs`."
                )
        for param in params.values():
            if param.name not in inputs:
                raise ToolDefinitionError(
                    f"{label}: forward's parameter '{param.name}' is not described in `inputs`. "
                    f"Add inputs['{param.name}'] = {{'type': ..., 'description': ...}} or remove the parameter."
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise ToolDefinitionError(
                    f"{label}: forward's parameter '{param.name}' is positional-only; tools are called with "
                    "keyword arguments, so remove the '/' from the signature."
                )
        defaults: dict[str, str] = {}
        for arg, entry in inputs.items():
            declared = params.get(arg)
            default = inspect.Parameter.empty if declared is None else declared.default
            has_default = default is not inspect.Parameter.empty
            optional = entry.get("nullable") is True or "default" in entry
            if optional and declared is not None and not has_default:
                raise ToolDefinitionError(
                    f"{label}: input '{arg}' is optional (nullable or with a default) but forward's "
                    f"parameter '{arg}' has no default. Give it one, e.g. `{arg}=None`."
                )
            if has_default and not optional:
                # forward already makes it optional; say so in the schema instead of refusing the tool
                if schema.is_jsonable(default):
                    entry["default"] = default
                else:
                    entry["nullable"] = True
            if has_default:
                defaults[arg] = _render_default(default)
            elif "default" in entry:
                defaults[arg] = _render_default(entry["default"])
            elif entry.get("nullable") is True:
                defaults[arg] = "None"
        self.inputs = inputs
        self.required_inputs = [
            a for a, e in inputs.items() if not (e.get("nullable") is True or "default" in e)
        ]
        self._annotations = {arg: schema.render_schema_type(entry) for arg, entry in inputs.items()}
        self._stub_defaults = defaults
        if self.output_schema is not None:
            self._return_annotation = schema.render_schema_type(self.output_schema)
        else:
            self._return_annotation = _PY_RETURN.get(self.output_type, "Any")
        self._coerced = {}
        required = self.required_inputs
        defs = self.input_defs
        from .validation import ArgumentValidator

        self._validator_factory = lambda: ArgumentValidator.for_inputs(inputs, required, defs)

    # ----------------------------------------------------------------------------------------- calls

    @property
    def is_async(self) -> bool:
        """Whether the tool's work is a coroutine (then `acall` awaits it natively)."""
        return inspect.iscoroutinefunction(self._target())

    def _ensure_setup(self) -> None:
        if self._setup_done:
            return
        with _SETUP_LOCK:
            if not self._setup_done:
                self.setup()
                self._setup_done = True

    def _coerce(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn dicts written in code into the enum/dataclass/model instances the hints promise."""
        if not self._coerced:
            return args, kwargs
        from pydantic import ValidationError

        from .validation import type_adapter

        adapters = self.__dict__.get("_coerce_adapters")
        if adapters is None:  # built once: a TypeAdapter costs far more than the call it guards
            adapters = {arg: type_adapter(hint) for arg, hint in self._coerced.items()}
            self.__dict__["_coerce_adapters"] = adapters
            self.__dict__["_signature"] = inspect.signature(self._target())
        try:
            bound = self.__dict__["_signature"].bind(*args, **kwargs)
        except TypeError as exc:
            raise AgentToolCallError(f"Tool '{self.name}' was called wrongly: {exc}.") from None
        for arg, hint in self._coerced.items():
            if arg not in bound.arguments or (
                isinstance(hint, type) and isinstance(bound.arguments[arg], hint)
            ):
                continue
            try:
                bound.arguments[arg] = adapters[arg].validate_python(bound.arguments[arg])
            except ValidationError as exc:
                raise AgentToolCallError(
                    f"Tool '{self.name}': argument '{arg}' does not fit {self._annotations.get(arg)}: "
                    f"{exc.errors(include_url=False)[0].get('msg')}."
                ) from None
        return bound.args, bound.kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool and return its result unchanged; an async tool is run to completion."""
        self._ensure_setup()
        args, kwargs = self._coerce(args, kwargs)
        result = self._target()(*args, **kwargs)
        if inspect.iscoroutine(result):
            from ._loop import run_sync

            result = run_sync(result)
        return result

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `__call__`: awaits an async tool natively, runs a sync one in a worker thread."""
        import asyncio  # here, not at the top: `from codeloop import tool` should not pay for asyncio

        if not self._setup_done:
            await asyncio.to_thread(self._ensure_setup)
        args, kwargs = self._coerce(args, kwargs)
        target = self._target()
        if self.is_async:
            return await target(*args, **kwargs)
        result = await asyncio.to_thread(target, *args, **kwargs)
        if inspect.iscoroutine(result):
            result = await result
        return result

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce JSON arguments from a model; `AgentToolCallError` says what to fix.

        Arguments left out stay out (the tool's defaults apply). Objects become the dataclasses, enums and
        pydantic models the tool's hints ask for.
        """
        if self._validator is None:
            self._validator = self._validator_factory()
        return self._validator.validate(self.name, arguments, self.inputs)

    # --------------------------------------------------------------------------------- presentation

    @property
    def parameters_schema(self) -> dict[str, Any]:
        """The arguments as one standard JSON Schema object."""
        from .schema import to_json_schema

        schema: dict[str, Any] = {
            "type": "object",
            "properties": {arg: to_json_schema(entry) for arg, entry in self.inputs.items()},
            "required": list(self.required_inputs),
            "additionalProperties": False,
        }
        if self.input_defs:
            schema["$defs"] = self.input_defs
        return schema

    def to_function_spec(self) -> dict[str, Any]:
        """Provider-neutral function spec `{"name", "description", "parameters"}`; model adapters translate it."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters_schema}

    def to_code_prompt(self) -> str:
        """The tool as a Python stub with a Google-style docstring, as a CodeAgent's system prompt shows it."""
        from .schema import describe_schema

        if all(arg.isidentifier() and not keyword.iskeyword(arg) for arg in self.inputs):
            params = []
            for arg in self.inputs:
                text = f"{arg}: {self._annotations.get(arg, 'Any')}"
                if arg in self._stub_defaults:
                    text += f" = {self._stub_defaults[arg]}"
                params.append(text)
            ordered = [p for p in params if " = " not in p] + [p for p in params if " = " in p]
            if ordered != params:  # a required argument after an optional one: keyword-only keeps it valid
                params = ["*", *params]
            signature = ", ".join(params)
        else:
            signature = "**kwargs: Any"
        lines = [f"def {self.name}({signature}) -> {self._return_annotation}:"]
        lines += _hanging('    """', _docstring_text(self.description), "    ")
        if self.inputs:
            lines += ["", "    Args:"]
            for arg, entry in self.inputs.items():
                text = _docstring_text(str(entry.get("description", ""))).strip()
                if _has_shape(entry) and not self._annotations.get(arg, "").startswith("Literal"):
                    text = f"{text} ({describe_schema(entry)})" if text else describe_schema(entry)
                lines += _hanging(f"        {arg}: ", text, "            ")
        if self.output_description or (self.output_schema and _has_shape(self.output_schema)):
            text = _docstring_text(self.output_description or "").strip()
            if self.output_schema and _has_shape(self.output_schema):
                shape = describe_schema(self.output_schema)
                text = f"{text} ({shape})" if text else shape
            lines += [
                "",
                "    Returns:",
                *_hanging(f"        {self._return_annotation}: ", text, "            "),
            ]
        lines.append('    """')
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------ interop

    @classmethod
    def from_mcp(cls, server_parameters: Any, tool_name: str, **kwargs: Any) -> Tool:
        """One tool of an MCP server (`codeloop.tools.mcp.tool_from_mcp`); it runs on that server."""
        from .mcp import tool_from_mcp

        return tool_from_mcp(server_parameters, tool_name, **kwargs)

    @classmethod
    def from_langchain(cls, langchain_tool: Any) -> Tool:
        """Wrap a LangChain tool (`BaseTool`) as a codeloop tool (extra: `codeloop[langchain]`)."""
        from .interop import tool_from_langchain

        return tool_from_langchain(langchain_tool)

    def to_dict(self, include_code: bool | None = None) -> dict[str, Any]:
        """JSON-ready schema of the tool, plus its self-contained code when it has some (see `sharing`)."""
        from .sharing import tool_to_dict

        return tool_to_dict(self, include_code)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, trust_remote_code: bool = False, function: Any = None
    ) -> Tool:
        """Re-create a tool from `to_dict` output: its code (with `trust_remote_code=True`) or `function`."""
        from .sharing import tool_from_dict

        return tool_from_dict(data, trust_remote_code=trust_remote_code, function=function)

    def save(self, folder: Any) -> Any:
        """Write the tool as a self-contained folder: tool.py, tool.json, requirements.txt, README.md."""
        from .sharing import save_tool

        return save_tool(self, folder)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload the saved tool to a Hugging Face Hub repository; returns the commit URL."""
        from .sharing import push_tool_to_hub

        return push_tool_to_hub(self, repo_id, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={getattr(self, 'name', None)!r}, inputs={list(getattr(self, 'inputs', {}))!r})"


class FunctionTool(Tool):
    """A tool made from a plain function by `@tool`; calling it calls the function."""

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        idempotent: bool = False,
    ):
        if not callable(function):
            raise ToolDefinitionError(f"@tool needs a function; got {function!r}.")
        if not isinstance(requires_approval, bool):
            raise ToolDefinitionError(f"requires_approval must be True or False; got {requires_approval!r}.")
        self._function = function
        if requires_approval:
            self.requires_approval = True
        self.description_override = description
        """The description given to `@tool(description=...)`, if any (the docstring's otherwise)."""
        self.name = name if name is not None else getattr(function, "__name__", "")
        self.idempotent = idempotent
        if description is not None:
            self.description = description
        functools.update_wrapper(self, function, updated=())

    def _target(self) -> Callable[..., Any]:
        return self._function

    def _label(self) -> str:
        return f"Tool function '{getattr(self._function, '__qualname__', self.name)}'"

    def _fallback_doc(self) -> str | None:
        return None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the wrapped function."""
        return self._function(*args, **kwargs)

    @property
    def function(self) -> Callable[..., Any]:
        """The decorated function itself."""
        return self._function


@overload
def tool(function: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    idempotent: bool = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    idempotent: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a function into a `Tool` that is still callable like the function.

    The schema comes from the type hints and the docstring's `Args:` section; a missing docstring, argument
    description or type hint raises `ToolDefinitionError` naming the function and the argument. Use bare
    (`@tool`) or with overrides (`@tool(name="search", description="...")`). Works on `async def` too.
    `requires_approval=True` makes every call wait for a person's decision (see `codeloop.approval`).
    `idempotent=True` lets a resumed run repeat a call that was in flight when the run stopped.
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "requires_approval": requires_approval,
        "idempotent": idempotent,
    }
    if function is not None:
        return FunctionTool(function, **options)

    def decorate(func: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(func, **options)

    return decorate


# ----------------------------------------------------------------------------------------- helpers


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _check_input_entry(label: str, arg: str, entry: Any) -> None:
    from .schema import OUTPUT_TYPES

    if not isinstance(entry, dict):
        raise ToolDefinitionError(f"{label}: inputs['{arg}'] must be a dict (a JSON Schema); got {entry!r}.")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ToolDefinitionError(
            f"{label}: inputs['{arg}'] has no 'description'. Say what the argument means; the model reads it."
        )
    if not (_SCHEMA_KEYWORDS & entry.keys()):
        raise ToolDefinitionError(
            f"{label}: inputs['{arg}'] has no 'type'. Use one of {', '.join(sorted(OUTPUT_TYPES))}."
        )
    kinds = entry.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in OUTPUT_TYPES:
            raise ToolDefinitionError(
                f"{label}: inputs['{arg}'] has type {kind!r}; use one of {', '.join(sorted(OUTPUT_TYPES))}."
            )


def _render_default(value: Any) -> str:
    import enum

    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    text = repr(value)
    return "..." if text.startswith("<") else text


def _has_shape(schema: Any) -> bool:
    """Whether a schema holds structure (object fields, allowed values) worth spelling out in prose."""
    if isinstance(schema, dict):
        if "properties" in schema or "enum" in schema or "const" in schema:
            return True
        return any(_has_shape(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_shape(v) for v in schema)
    return False


def _docstring_text(text: str) -> str:
    return text.replace('"""', '\\"\\"\\"')


def _hanging(head: str, text: str, indent: str) -> list[str]:
    """`head` + the first line of `text`, further lines indented by `indent` (blank lines kept blank)."""
    first, *rest = text.strip().split("\n") if text.strip() else [""]
    return [head + first, *[indent + line.rstrip() if line.strip() else "" for line in rest]]
