"""Sharing tools: save a tool to a folder, load it back from a folder, a git repository or the Hugging Face Hub.

A saved tool is a folder:
    tool.py           the tool's own source, made self-contained (the imports it needs, nothing else)
    tool.json         name, description, inputs, output type, and which object in tool.py is the tool
    requirements.txt  the third-party packages tool.py imports
    README.md         what it is and how to load it

Loading code from anywhere but a local folder runs someone else's Python on this machine, so it needs
`trust_remote_code=True`. A tool whose source uses a name defined outside it (a module-level helper, a
global variable) cannot be re-created elsewhere and is refused at save time with that name.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import traceback
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ToolDefinitionError
from .base import FunctionTool, Tool

__all__ = [
    "ToolLoadError",
    "tool_source",
    "save_tool",
    "load_tool",
    "load_tool_from_folder",
    "push_tool_to_hub",
    "push_saved_to_hub",
    "download_from_hub",
    "clone_git",
    "tool_to_dict",
    "tool_from_dict",
    "FORMAT",
]

FORMAT = "codeloop-tool/1"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BUILTIN_NAMES = frozenset(dir(builtins))


class ToolLoadError(ToolDefinitionError):
    """A tool could not be loaded: missing or broken files, an unknown reference, untrusted remote code."""


# ----------------------------------------------------------------------------------------- source


def _module_imports(module: types.ModuleType) -> tuple[dict[str, str], bool]:
    """Top-level import statements of `module`, one per bound name, and whether it uses PEP 563."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return {}, False
    found: dict[str, str] = {}
    future = False
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                found[bound] = ast.unparse(ast.Import(names=[alias]))
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                future = future or any(a.name == "annotations" for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                package = module.__package__ or ""
                base = importlib.util.resolve_name("." * node.level + base, package)
            for alias in node.names:
                if alias.name != "*":
                    found[alias.asname or alias.name] = ast.unparse(
                        ast.ImportFrom(module=base, names=[alias], level=0)
                    )
    return found, future


def _needed_names(source: str) -> set[str]:
    """Names `source` reads from its module's globals (including names inside string annotations)."""
    import symtable

    table = symtable.symtable(source, "<tool>", "exec")
    needed = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced() and not s.is_assigned() and not s.is_imported()
    }

    def nested(t: symtable.SymbolTable) -> None:
        for child in t.get_children():
            needed.update(s.get_name() for s in child.get_symbols() if s.is_referenced() and s.is_global())
            nested(child)

    nested(table)
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            every += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            needed.update(_annotation_names(annotation))
    return needed - defined


def _annotation_names(annotation: ast.expr | None) -> set[str]:
    """Names an annotation refers to; quoted forward references count, `Literal[...]` values do not."""
    if annotation is None:
        return set()
    if isinstance(annotation, ast.Constant):
        if not isinstance(annotation.value, str):
            return set()
        try:
            return _annotation_names(ast.parse(annotation.value, mode="eval").body)
        except SyntaxError:
            return set()
    if isinstance(annotation, ast.Name):
        return {annotation.id}
    if isinstance(annotation, ast.Subscript):
        head = _annotation_names(annotation.value)
        target = annotation.value
        is_literal = (isinstance(target, ast.Name) and target.id == "Literal") or (
            isinstance(target, ast.Attribute) and target.attr == "Literal"
        )
        return head if is_literal else head | _annotation_names(annotation.slice)
    found: set[str] = set()
    for child in ast.iter_child_nodes(annotation):
        if isinstance(child, ast.expr):
            found |= _annotation_names(child)
    return found


def _object_source(obj: Any, label: str) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        raise ToolDefinitionError(
            f"{label}: its source code is not available ({exc}), so it cannot be saved. "
            "Define it in a .py file (not in an interactive session or with exec)."
        ) from None


def _without_decorators(source: str) -> str:
    """The function definition from its `def` line on (its `@tool` decorator is re-applied by hand)."""
    node = ast.parse(source).body[0]
    lines = source.splitlines()
    return "\n".join(lines[node.lineno - 1 :]) + "\n"


def tool_source(tool: Tool) -> tuple[str, str, list[str]]:
    """(tool.py text, entry object name, requirements) for a tool; `ToolDefinitionError` names what is missing."""
    if tool.unshareable_reason:
        raise ToolDefinitionError(f"Tool '{tool.name}' {tool.unshareable_reason}")
    if isinstance(tool, FunctionTool):
        function = inspect.unwrap(tool.function)
        label = f"Tool '{tool.name}' (function {getattr(function, '__qualname__', function)})"
        body = _without_decorators(_object_source(function, label))
        entry = function.__name__
        module = inspect.getmodule(function)
        extra = ["from codeloop.tools import tool"]
        options = ""
        if tool.name != entry:
            options += f", name={tool.name!r}"
        if tool.description_override is not None:
            options += f", description={tool.description_override!r}"
        trailer = f"\n\n{entry} = tool({entry}{options})\n"
        globals_ = getattr(function, "__globals__", {})
    else:
        cls = type(tool)
        label = f"Tool '{tool.name}' (class {cls.__qualname__})"
        if cls.__module__.split(".")[0] == "codeloop":
            # A built-in: the installed codeloop has the code, so the saved tool is a reference to it.
            return f"from {cls.__module__} import {cls.__name__}\n", cls.__name__, ["codeloop"]
        required = [
            p.name
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise ToolDefinitionError(
                f"{label} needs constructor arguments ({', '.join(required)}); a saved tool is re-created as "
                f"{cls.__name__}(), so give them defaults or make them class attributes."
            )
        body = _object_source(cls, label)
        entry = cls.__name__
        module = inspect.getmodule(cls)
        extra = []
        trailer = ""
        globals_ = vars(module) if module is not None else {}
    _refuse_closures(tool, label)
    imports, future = _module_imports(module) if module is not None else ({}, False)
    lines: list[str] = []
    for name in sorted(_needed_names(body)):
        if name in _BUILTIN_NAMES or name == entry:
            continue
        if name in imports:
            lines.append(imports[name])
            continue
        value = globals_.get(name)
        if isinstance(value, types.ModuleType):
            lines.append(f"import {value.__name__}" + ("" if value.__name__ == name else f" as {name}"))
        elif value is not None and _importable_elsewhere(value, module, name):
            lines.append(
                f"from {value.__module__} import {value.__qualname__}"
                + ("" if value.__qualname__ == name else f" as {name}")
            )
        else:
            where = f" in module {module.__name__}" if module is not None else ""
            raise ToolDefinitionError(
                f"{label} is not self-contained: it uses '{name}', which is defined outside it{where}. "
                f"Move '{name}' inside the tool, or import it inside the tool's code."
            )
    header = [
        f"# The tool `{tool.name}`, saved by codeloop. Load it with codeloop.tools.load_tool(<folder>)."
    ]
    if future:
        header.append("from __future__ import annotations")
    imports_block = sorted(set(lines) | set(extra))
    text = "\n".join(header + [""] + imports_block + ["", ""]) + body.rstrip() + "\n" + trailer
    return text, entry, _requirements(text)


def _refuse_closures(tool: Tool, label: str) -> None:
    """A function that reads its enclosing function's variables cannot live in a file of its own."""
    if isinstance(tool, FunctionTool):
        functions = [inspect.unwrap(tool.function)]
    else:
        functions = [f for f in vars(type(tool)).values() if inspect.isfunction(f)]
    for function in functions:
        captured = sorted(n for n in function.__code__.co_freevars if n != "__class__")
        if captured:
            raise ToolDefinitionError(
                f"{label} is not self-contained: it uses '{captured[0]}', a variable of the function it was "
                "defined in. Pass it as an argument or define it inside the tool."
            )


def _importable_elsewhere(value: Any, module: types.ModuleType | None, name: str) -> bool:
    owner = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    return bool(
        owner
        and qualname
        and "<" not in qualname
        and "." not in qualname
        and owner != "__main__"
        and (module is None or owner != module.__name__)
    )


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    """Importable top-level name -> distributions providing it (scanning them all is slow, so once)."""
    return importlib.metadata.packages_distributions()


def _requirements(source: str) -> list[str]:
    """Distributions providing the third-party modules `source` imports (stdlib left out)."""
    tops: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.split(".")[0])
    tops -= set(sys.stdlib_module_names) | {"__future__"}
    owners = _distributions()
    found: set[str] = set()
    for top in tops:
        found.update(owners.get(top, [top]))
    return sorted(found, key=str.lower)


# ------------------------------------------------------------------------------------------- save


def save_tool(tool: Tool, folder: str | Path) -> Path:
    """Write `tool` as a self-contained folder (tool.py, tool.json, requirements.txt, README.md)."""
    source, entry, requirements = tool_source(tool)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    (target / "tool.py").write_text(source, encoding="utf-8")
    metadata = {
        "format": FORMAT,
        "name": tool.name,
        "description": tool.description,
        "inputs": tool.inputs,
        "output_type": tool.output_type,
        "output_schema": tool.output_schema,
        "entry": entry,
    }
    (target / "tool.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (target / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    (target / "README.md").write_text(_readme(tool), encoding="utf-8")
    return target


def _readme(tool: Tool) -> str:
    return (
        f"---\ntags:\n- codeloop\n- tool\n---\n\n# {tool.name}\n\n{tool.description}\n\n"
        "A tool for [codeloop](https://pypi.org/project/codeloop/) agents. Load it with:\n\n"
        "```python\nfrom codeloop.tools import load_tool\n\n"
        f'{tool.name} = load_tool("<this folder, git URL or Hub repo id>", trust_remote_code=True)\n```\n\n'
        f"```python\n{tool.to_code_prompt()}\n```\n"
    )


# ------------------------------------------------------------------------------------------- load


def load_tool_from_folder(folder: str | Path) -> Tool:
    """Load a saved tool from a local folder; errors name the file (and line) at fault."""
    root = Path(folder)
    meta_path, code_path = root / "tool.json", root / "tool.py"
    for needed in (meta_path, code_path):
        if not needed.is_file():
            raise ToolLoadError(f"{needed} is missing: a saved tool folder holds tool.json and tool.py.")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ToolLoadError(f"{meta_path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    if not isinstance(metadata, dict) or "entry" not in metadata:
        raise ToolLoadError(
            f"{meta_path} does not say which object in tool.py is the tool (its 'entry' key)."
        )
    module = _import_file(code_path, metadata.get("name", "tool"), root)
    entry = metadata["entry"]
    if not hasattr(module, entry):
        raise ToolLoadError(f"{code_path} defines no '{entry}', the tool named in {meta_path}.")
    found = getattr(module, entry)
    if isinstance(found, type) and issubclass(found, Tool):
        found = found()
    if not isinstance(found, Tool):
        raise ToolLoadError(f"'{entry}' in {code_path} is a {type(found).__name__}, not a codeloop Tool.")
    return found


def _import_file(path: Path, name: str, root: Path) -> types.ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"codeloop_loaded_tools.{re.sub(r'[^0-9A-Za-z_]', '_', name)}_{digest}"
    source = path.read_text(encoding="utf-8")
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ToolLoadError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}.") from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so inspect.getsource (and saving it again) can find the code
    try:
        spec.loader.exec_module(module)
    except ToolDefinitionError:
        raise
    except Exception as exc:
        line = _line_in(exc, path)
        hint = ""
        if isinstance(exc, ImportError):
            requirements = root / "requirements.txt"
            listed = requirements.read_text().split() if requirements.is_file() else []
            hint = f" Install its requirements: pip install {' '.join(listed)}" if listed else ""
        raise ToolLoadError(f"{path}{line}: {type(exc).__name__}: {exc}.{hint}") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f", line {frames[-1].lineno}" if frames else ""


def _is_git_ref(ref: str) -> bool:
    return (
        ref.startswith(("git+", "git@", "ssh://"))
        or (ref.endswith(".git") and ref.startswith(("http://", "https://", "file://", "/")))
        or ".git@" in ref
    )


def _untrusted(ref: str, where: str) -> ToolLoadError:
    return ToolLoadError(
        f"Loading {ref!r} from {where} runs its Python code (tool.py) on this machine. Read that code first, "
        f"then pass trust_remote_code=True to load it."
    )


def clone_git(ref: str, cache_dir: str | Path | None = None) -> Path:
    """Clone a git reference (`git+URL[@rev]`, or a URL ending in .git) and return the checkout folder."""
    url = ref[4:] if ref.startswith("git+") else ref
    revision = None
    if "@" in url.rsplit("/", 1)[-1]:
        url, revision = url.rsplit("@", 1)
    if shutil.which("git") is None:
        raise ToolLoadError(f"Cannot load {ref!r}: the git command is not installed.")
    root = Path(cache_dir or Path.home() / ".cache" / "codeloop" / "git")
    root.mkdir(parents=True, exist_ok=True)
    # One checkout per reference, cloned afresh each time so a moved branch is never served stale.
    target = root / hashlib.sha256(f"{url}@{revision or ''}".encode()).hexdigest()[:16]
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    clone = subprocess.run(
        ["git", "clone", "--quiet", url, str(target / "repo")], capture_output=True, text=True, timeout=300
    )
    if clone.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise ToolLoadError(f"The git repository {url!r} could not be cloned: {clone.stderr.strip()}")
    if revision:
        checkout = subprocess.run(
            ["git", "-C", str(target / "repo"), "checkout", "--quiet", revision],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if checkout.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise ToolLoadError(f"Revision {revision!r} does not exist in {url!r}: {checkout.stderr.strip()}")
    return target / "repo"


def download_from_hub(
    repo_id: str,
    *,
    repo_type: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download a Hub repository (a model repo, else a Space, unless `repo_type` says) and return its folder."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    except ImportError as exc:
        raise ImportError("loading from the Hugging Face Hub needs: pip install 'codeloop[hub]'") from exc
    kinds = [repo_type] if repo_type else ["model", "space"]
    for kind in kinds:
        try:
            return Path(
                snapshot_download(
                    repo_id,
                    repo_type=kind,
                    revision=revision,
                    token=token,
                    endpoint=endpoint,
                    cache_dir=str(cache_dir) if cache_dir else None,
                )
            )
        except RevisionNotFoundError:
            raise ToolLoadError(f"Hub repository {repo_id!r} has no revision {revision!r}.") from None
        except RepositoryNotFoundError:
            continue
    raise ToolLoadError(
        f"Hub repository {repo_id!r} was not found (as a {' or a '.join(kinds)} repo). Check the id, and pass "
        "token=... if it is private."
    )


def load_tool(
    ref: str | Path,
    *,
    trust_remote_code: bool = False,
    subfolder: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    repo_type: str | None = None,
    hub_endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> Tool:
    """Load a tool from a local folder, a git repository (`git+URL[@rev]` or `....git`) or a Hub repo id.

    Anything but a local folder needs `trust_remote_code=True`, because loading runs the tool's code.
    """
    text = str(ref)
    local = Path(text).expanduser()
    if local.is_dir():
        return load_tool_from_folder(local / subfolder if subfolder else local)
    if _is_git_ref(text):
        if not trust_remote_code:
            raise _untrusted(text, "a git repository")
        folder = clone_git(text, cache_dir)
    elif _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        if not trust_remote_code:
            raise ToolLoadError(
                f"There is no folder {text!r} here, so it was taken as a Hugging Face Hub repo id. "
                + str(_untrusted(text, "the Hub"))
            )
        folder = download_from_hub(
            text,
            repo_type=repo_type,
            revision=revision,
            token=token,
            endpoint=hub_endpoint,
            cache_dir=cache_dir,
        )
    else:
        raise ToolLoadError(
            f"Cannot load a tool from {text!r}: it is not an existing folder, a git URL (git+https://..., "
            "ending in .git) or a Hub repo id (owner/name)."
        )
    return load_tool_from_folder(folder / subfolder if subfolder else folder)


# -------------------------------------------------------------------------------------------- hub


def push_tool_to_hub(
    tool: Tool,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    repo_type: str = "model",
    endpoint: str | None = None,
) -> str:
    """Upload the saved form of `tool` to a Hub repository (created if missing); returns the commit URL."""
    return push_saved_to_hub(
        lambda folder: save_tool(tool, folder),
        repo_id,
        token=token,
        private=private,
        commit_message=commit_message or f"Upload tool {tool.name}",
        repo_type=repo_type,
        endpoint=endpoint,
    )


def push_saved_to_hub(
    save: Callable[[str], object],
    repo_id: str,
    *,
    commit_message: str,
    token: str | None = None,
    private: bool | None = None,
    repo_type: str = "model",
    endpoint: str | None = None,
) -> str:
    """Call `save(folder)` on a fresh temporary folder, then upload that folder as `upload_folder_to_hub` does.

    Tools and agents are pushed the same way: written in their saved form, then uploaded in one commit.
    """
    with tempfile.TemporaryDirectory() as folder:
        save(folder)
        return upload_folder_to_hub(
            folder,
            repo_id,
            token=token,
            private=private,
            commit_message=commit_message,
            repo_type=repo_type,
            endpoint=endpoint,
        )


def upload_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload with codeloop",
    repo_type: str = "model",
    endpoint: str | None = None,
    space_sdk: str = "static",
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit; returns the commit URL.

    `repo_type` is "model" by default; for "space", `space_sdk` says how the Space is built.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise ImportError("pushing to the Hugging Face Hub needs: pip install 'codeloop[hub]'") from exc
    api = HfApi(endpoint=endpoint, token=token)
    sdk = space_sdk if repo_type == "space" else None  # create_repo wants no SDK for other repo types
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=sdk)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
    )
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------------------------------- dict


def tool_to_dict(tool: Tool, include_code: bool | None = None) -> dict[str, Any]:
    """A JSON-ready description of `tool`: its schema, plus its code when it can be shared.

    `include_code=None` adds the code when the tool is self-contained; True insists (raising otherwise);
    False gives the schema alone.
    """
    data: dict[str, Any] = {
        "format": FORMAT,
        "name": tool.name,
        "description": tool.description,
        "inputs": tool.inputs,
        "output_type": tool.output_type,
        "output_schema": tool.output_schema,
        "parameters": tool.parameters_schema,
    }
    if include_code is not False:
        try:
            code, entry, requirements = tool_source(tool)
        except ToolDefinitionError:
            if include_code:
                raise
        else:
            data.update(code=code, entry=entry, requirements=requirements)
    return data


def tool_from_dict(data: dict[str, Any], *, trust_remote_code: bool = False, function: Any = None) -> Tool:
    """Re-create a tool from `tool_to_dict` output: from its code (needs `trust_remote_code=True`), or from
    its schema with `function` doing the work."""
    for key in ("name", "description", "inputs"):
        if key not in data:
            raise ToolLoadError(f"the tool dict has no {key!r}; it needs name, description and inputs.")
    if function is not None:
        return _schema_tool(data, function)
    if "code" not in data:
        raise ToolLoadError(
            f"the dict for tool {data['name']!r} holds only its schema; pass function=... to run it."
        )
    if not trust_remote_code:
        raise ToolLoadError(
            f"the dict for tool {data['name']!r} carries Python code, and re-creating the tool runs it. "
            "Read data['code'] first, then pass trust_remote_code=True."
        )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "tool.py").write_text(data["code"], encoding="utf-8")
        (root / "tool.json").write_text(
            json.dumps({"name": data["name"], "entry": data.get("entry", data["name"])})
        )
        (root / "requirements.txt").write_text("".join(f"{r}\n" for r in data.get("requirements", [])))
        return load_tool_from_folder(root)


def _schema_tool(data: dict[str, Any], function: Any) -> Tool:
    class SchemaTool(Tool):
        """A tool described by a JSON schema whose work is done by a given function."""

        name = data["name"]
        description = data["description"]
        inputs = data["inputs"]
        output_type = data.get("output_type", "any")
        output_schema = data.get("output_schema")

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            # The code prompt shows the inputs as a Python signature, so agent code calls positionally too.
            return function(**_bind_in_order(self.name, list(self.inputs), args, kwargs))

    return SchemaTool()


def _bind_in_order(
    tool_name: str, names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Positional `args` given to the inputs `names` in order, merged with `kwargs`, as Python would bind them."""
    if len(args) > len(names):
        raise TypeError(
            f"{tool_name}() takes at most {len(names)} positional arguments but {len(args)} were given"
        )
    bound = dict(kwargs)
    for name, value in zip(names, args, strict=False):
        if name in bound:
            raise TypeError(f"{tool_name}() got multiple values for argument '{name}'")
        bound[name] = value
    return bound
