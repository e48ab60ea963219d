"""Saving and loading whole agents: class, model spec (never API keys), tools, managed agents, settings.

An agent folder:
    agent.json                 the agent's class, settings, model spec, instructions, and what was left out
    tools/<name>/              each tool, saved by `save_tool` (built-in tools as references)
    managed_agents/<name>/     each managed agent, saved the same way
    requirements.txt           everything the tools import
    README.md

Callbacks, final-answer checks and event listeners are functions of the running program, so they are not
saved; agent.json lists which were left out. The model is saved as its spec (provider, model id, API base,
generation settings); keys are read from the environment again when the agent is loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from pathlib import Path
from typing import Any

from .tools.schema import is_jsonable as is_jsonable_value
from .tools.sharing import (
    ToolLoadError,
    download_from_hub,
    load_tool_from_folder,
    push_saved_to_hub,
    save_tool,
)

__all__ = [
    "AGENT_FORMAT",
    "save_agent",
    "load_agent",
    "push_agent_to_hub",
    "load_agent_from_hub",
    "describe_model",
    "rebuild_model",
    "describe_compaction",
    "rebuild_compaction",
]

AGENT_FORMAT = "codeloop-agent/1"
_SECRET_WORDS = ("key", "token", "secret", "password", "auth", "credential")
# `store` is where runs are recorded, a choice of the machine running the agent, not part of the agent.
_HANDLED = {"tools", "model", "managed_agents", "add_base_tools", "kwargs", "self", "store"}
_FUNCTIONS = ("step_callbacks", "final_answer_checks", "listeners")
_BUDGET = ("max_tokens", "max_cost_usd", "max_duration_s")


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _class_path(cls: type) -> str:
    # codeloop's own agents are saved by their public name, so a folder keeps loading when a class moves
    # between modules; other classes by module and qualified name.
    if cls.__module__.startswith("codeloop.") and cls.__name__ in _PUBLIC_AGENT_CLASSES:
        return f"codeloop:{cls.__name__}"
    return f"{cls.__module__}:{cls.__qualname__}"


_PUBLIC_AGENT_CLASSES = ("MultiStepAgent", "CodeAgent", "ToolCallingAgent")
# Paths that folders saved by earlier versions hold for classes that have since moved.
_MOVED_CLASSES = {
    "codeloop.agents:ToolCallingAgent": "codeloop:ToolCallingAgent",
    "codeloop.agents:CodeAgent": "codeloop:CodeAgent",
}


def _import_class(path: str, where: Path) -> type:
    module_name, _, qualname = _MOVED_CLASSES.get(path, path).partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ToolLoadError(f"{where}: class {path!r} cannot be imported ({exc}).") from None
    if not isinstance(value, type):
        raise ToolLoadError(f"{where}: {path!r} is not a class.")
    return value


# ------------------------------------------------------------------------------------------ models


def describe_model(model: Any) -> dict[str, Any]:
    """The model as a spec that can re-create it: class, model id, and the constructor options it still holds
    (API base, timeout, generation settings), never API keys or other secrets."""
    cls = type(model)
    data: dict[str, Any] = {"class": _class_path(cls), "model_id": getattr(model, "model_id", "")}
    try:
        from .models import _PROVIDERS
    except ImportError:
        _PROVIDERS = {}
    for provider, (module, name) in _PROVIDERS.items():
        if cls.__name__ == name and cls.__module__ == f"codeloop.models{module}":
            data["spec"] = f"{provider}:{data['model_id']}"
            break
    options: dict[str, Any] = {}
    for name, param in _init_parameters(cls).items():
        if name in ("self", "model_id") or _secret(name) or name.endswith("client_kwargs"):
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or not hasattr(model, name):
            continue
        value = getattr(model, name)
        if name == "api_base" and value == getattr(cls, "default_api_base", None):
            continue
        if is_jsonable_value(value) and value != param.default:
            options[name] = value
    settings = getattr(model, "kwargs", None)
    if isinstance(settings, dict):
        options.update({k: v for k, v in settings.items() if not _secret(k) and is_jsonable_value(v)})
    if options:
        data["options"] = options
    return data


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is not None and klass is not object:
            params.update(inspect.signature(init).parameters)
    return params


def rebuild_model(data: dict[str, Any], where: Path) -> Any:
    """A model from `describe_model` output; keys come from the environment as usual."""
    kwargs = dict(data.get("options") or {})
    try:
        if data.get("spec"):
            from .models import model as model_from_spec

            return model_from_spec(data["spec"], **kwargs)
        cls = _import_class(data["class"], where)
        return cls(data["model_id"], **kwargs)
    except ToolLoadError:
        raise
    except Exception as exc:
        raise ToolLoadError(
            f"{where}: the saved model ({data.get('spec') or data.get('class')}) cannot be re-created: "
            f"{type(exc).__name__}: {exc}. Pass model=... when loading the agent."
        ) from None


# -------------------------------------------------------------------------------------------- save


def _settings(agent: Any) -> tuple[dict[str, Any], list[str]]:
    """Constructor arguments read back from the agent's attributes, and the names that could not be saved."""
    params = _init_parameters(type(agent))
    settings: dict[str, Any] = {}
    skipped: list[str] = []
    budget = getattr(agent, "budget", None)
    for name, param in params.items():
        if name in _HANDLED or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in _FUNCTIONS:
            if getattr(agent, name, None):
                skipped.append(name)
            continue
        if name in _BUDGET:
            value = getattr(budget, name, None)
        elif name == "executor":
            value = getattr(agent, "executor_spec", None)
            if not isinstance(value, str):
                skipped.append("executor")
                continue
        elif hasattr(agent, name):
            value = getattr(agent, name)
        else:
            continue
        if name.endswith("kwargs") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not _secret(k)}
        if name == "compaction" and value is not None:
            if _is_default(value, param.default):
                continue  # the default comes back by itself (and follows a changed default)
            value, unsaved = describe_compaction(value)
            skipped += [f"compaction.{field}" for field in unsaved]
        if is_jsonable_value(value):
            settings[name] = value
        elif not _is_default(
            value, param.default
        ):  # a default (e.g. the compaction policy) comes back by itself
            skipped.append(name)
    return settings, skipped


def describe_compaction(policy: Any) -> tuple[dict[str, Any], list[str]]:
    """A context policy (`codeloop.compaction`) as JSON-ready settings, and the fields it cannot keep (a
    `token_counter` function). A `Summarize` policy's own model is described like the agent's."""
    data: dict[str, Any] = {"policy": type(policy).__name__}
    unsaved: list[str] = []
    for field in dataclasses.fields(policy):
        value = getattr(policy, field.name)
        if field.name == "token_counter":
            if value is not None:
                unsaved.append(field.name)
        elif field.name == "model":
            data["model"] = None if value is None else describe_model(value)
        else:
            data[field.name] = value
    return data, unsaved


def rebuild_compaction(data: dict[str, Any], where: Path) -> Any:
    """A context policy from `describe_compaction` output."""
    from . import compaction

    settings = dict(data)
    name = settings.pop("policy", None)
    cls = {"MaskObservations": compaction.MaskObservations, "Summarize": compaction.Summarize}.get(str(name))
    if cls is None:
        raise ToolLoadError(
            f"{where}: the saved compaction policy {name!r} is unknown; expected MaskObservations or Summarize."
        )
    if isinstance(settings.get("model"), dict):
        settings["model"] = rebuild_model(settings["model"], where)
    try:
        return cls(**settings)
    except (TypeError, ValueError) as exc:
        raise ToolLoadError(f"{where}: the saved compaction policy cannot be re-created: {exc}") from None


def _is_default(value: Any, default: Any) -> bool:
    try:
        return default is not inspect.Parameter.empty and bool(value == default)
    except Exception:  # noqa: BLE001 - a value whose == fails or is not a bool is simply not the default
        return False


def _is_managed_agent_tool(agent: Any, name: str) -> bool:
    return name in (getattr(agent, "managed_agents", None) or {})


def save_agent(agent: Any, folder: str | Path) -> Path:
    """Write `agent` (and its tools and managed agents) to `folder`; loadable with `load_agent`."""
    from .tools.final_answer import FinalAnswerTool

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    settings, skipped = _settings(agent)
    tool_names: list[str] = []
    requirements: set[str] = set()
    for name, tool in agent.tools.items():
        if _is_managed_agent_tool(agent, name) or (name == "final_answer" and type(tool) is FinalAnswerTool):
            continue  # re-created by the agent itself
        tool_folder = save_tool(tool, target / "tools" / name)
        requirements.update((tool_folder / "requirements.txt").read_text().split())
        tool_names.append(name)
    managed: list[str] = []
    for name, sub_agent in (getattr(agent, "managed_agents", None) or {}).items():
        save_agent(sub_agent, target / "managed_agents" / name)
        requirements.update((target / "managed_agents" / name / "requirements.txt").read_text().split())
        managed.append(name)
    prompts: dict[str, Any] = {"instructions": getattr(agent, "instructions", None)}
    templates = getattr(agent, "prompt_templates", None)
    if isinstance(templates, dict) and is_jsonable_value(templates):
        prompts["templates"] = templates
    metadata = {
        "format": AGENT_FORMAT,
        "class": _class_path(type(agent)),
        "model": describe_model(agent.model),
        "settings": settings,
        "tools": tool_names,
        "managed_agents": managed,
        "prompts": prompts,
        "not_saved": sorted(skipped),
    }
    (target / "agent.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (target / "requirements.txt").write_text(
        "".join(f"{r}\n" for r in sorted(requirements)), encoding="utf-8"
    )
    title = agent.name or type(agent).__name__
    (target / "README.md").write_text(
        f"---\ntags:\n- codeloop\n- agent\n---\n\n# {title}\n\n{agent.description or ''}\n\n"
        f"A {type(agent).__name__} for codeloop with tools: {', '.join(tool_names) or 'none'}.\n\n"
        "```python\nfrom codeloop.agent_io import load_agent\n\n"
        'agent = load_agent("<this folder>")\n```\n',
        encoding="utf-8",
    )
    return target


# -------------------------------------------------------------------------------------------- load


def load_agent(
    folder: str | Path,
    *,
    trust_remote_code: bool = False,
    model: Any = None,
    expected_class: type | None = None,
    **overrides: Any,
) -> Any:
    """Re-create an agent saved by `save_agent`. `model` replaces the saved model (and is handed to the
    managed agents too); `overrides` replace saved settings. A local folder needs no trust flag; folders from
    elsewhere go through `load_agent_from_hub`, which does."""
    root = Path(folder)
    meta_path = root / "agent.json"
    if not meta_path.is_file():
        raise ToolLoadError(f"{meta_path} is missing: a saved agent folder holds agent.json.")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ToolLoadError(f"{meta_path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    cls = _import_class(metadata["class"], meta_path)
    if expected_class is not None and not issubclass(cls, expected_class):
        raise ToolLoadError(
            f"{meta_path} holds a {cls.__name__}, not a {expected_class.__name__}; load it with "
            f"{cls.__name__}.from_folder(...) or codeloop.agent_io.load_agent(...)."
        )
    tools = [load_tool_from_folder(root / "tools" / name) for name in metadata.get("tools", [])]
    managed = [
        load_agent(root / "managed_agents" / name, trust_remote_code=trust_remote_code, model=model)
        for name in metadata.get("managed_agents", [])
    ]
    chosen_model = model if model is not None else rebuild_model(metadata["model"], meta_path)
    settings = dict(metadata.get("settings") or {})
    settings.update(overrides)
    accepted = set(_init_parameters(cls))
    unknown = sorted(k for k in settings if k not in accepted)
    if unknown:
        raise ToolLoadError(f"{meta_path}: {cls.__name__} does not accept the saved settings {unknown}.")
    if managed:
        settings["managed_agents"] = managed
    if isinstance(settings.get("compaction"), dict):
        settings["compaction"] = rebuild_compaction(settings["compaction"], meta_path)
    agent = cls(tools=tools, model=chosen_model, **settings)
    templates = (metadata.get("prompts") or {}).get("templates")
    if templates and hasattr(agent, "prompt_templates"):
        agent.prompt_templates = templates
    return agent


def push_agent_to_hub(
    agent: Any,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    repo_type: str = "model",
    endpoint: str | None = None,
) -> str:
    """Upload the saved agent to a Hub repository (created if missing); returns the commit URL."""
    return push_saved_to_hub(
        lambda folder: save_agent(agent, folder),
        repo_id,
        token=token,
        private=private,
        commit_message=commit_message or f"Upload agent {agent.name or type(agent).__name__}",
        repo_type=repo_type,
        endpoint=endpoint,
    )


def load_agent_from_hub(
    repo_id: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | None = None,
    repo_type: str | None = None,
    endpoint: str | None = None,
    **kwargs: Any,
) -> Any:
    """Download an agent folder from the Hub and load it; needs `trust_remote_code=True` (its tools' code runs)."""
    if not trust_remote_code:
        raise ToolLoadError(
            f"Loading the agent {repo_id!r} from the Hub runs its tools' Python code on this machine. Read it "
            "first, then pass trust_remote_code=True."
        )
    folder = download_from_hub(
        repo_id, repo_type=repo_type, revision=revision, token=token, endpoint=endpoint
    )
    return load_agent(folder, trust_remote_code=True, **kwargs)
