"""Sharing tools: save/load folders, git repositories (a local bare repo), the Hugging Face Hub (the real
`huggingface_hub` client pointed at a Hub stand-in on 127.0.0.1), and JSON exchange with to_dict/from_dict."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from codeloop import CodeAgent
from codeloop.errors import ToolDefinitionError
from codeloop.testing import ScriptedModel
from codeloop.tools import FunctionTool, Tool, tool
from codeloop.tools.sharing import ToolLoadError, load_tool, save_tool, tool_source

TOOLS_MODULE = textwrap.dedent(
    '''
    """Tools written the way users write them, in a module of their own."""
    from __future__ import annotations

    import json
    import math as m
    from dataclasses import dataclass
    from typing import Any, Literal

    from codeloop.tools import Tool, tool

    RATE = 3


    @dataclass
    class Point:
        x: float
        y: float


    @tool
    def circle_area(radius: float, unit: Literal["m", "cm"] = "m") -> float:
        """Area of a circle.

        Args:
            radius: The radius.
            unit: The unit of the radius.
        """
        return round(m.pi * radius**2, 3)


    @tool(name="dump_json", description="Serialize data as sorted JSON.")
    def to_json(data: dict[str, Any]) -> str:
        """Ignored summary.

        Args:
            data: What to serialize.
        """
        return json.dumps(data, sort_keys=True)


    @tool
    def weather(city: str) -> str:
        """The weather in a city (a canned answer, for tests).

        Args:
            city: The city.
        """
        return f"Sunny in {city}, 21 C"


    @tool
    def with_global(x: int) -> int:
        """Uses a module-level constant.

        Args:
            x: A number.
        """
        return x * RATE


    @tool
    def with_class(p: Point) -> float:
        """Uses a class defined in this module.

        Args:
            p: A point.
        """
        return p.x


    class Greeter(Tool):
        name = "greet"
        description = "Greet someone politely."
        inputs = {"who": {"type": "string", "description": "Who to greet."}}
        output_type = "string"

        def forward(self, who: str) -> str:
            import textwrap

            return textwrap.shorten(f"Hello {who}!", width=40)


    class NeedsArgs(Tool):
        name = "needs_args"
        description = "Needs a constructor argument."
        inputs = {"x": {"type": "integer", "description": "X."}}
        output_type = "integer"

        def __init__(self, factor: int) -> None:
            self.factor = factor

        def forward(self, x: int) -> int:
            return x * self.factor
    '''
)


@pytest.fixture(scope="module")
def user_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("usercode")
    (folder / "user_tools.py").write_text(TOOLS_MODULE)
    sys.path.insert(0, str(folder))
    try:
        import user_tools

        yield user_tools
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("user_tools", None)


# ----------------------------------------------------------------------------------------- folders


def test_function_tool_round_trip(user_tools: Any, tmp_path: Path) -> None:
    folder = save_tool(user_tools.circle_area, tmp_path / "circle")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "requirements.txt",
        "tool.json",
        "tool.py",
    ]
    code = (folder / "tool.py").read_text()
    assert "import math as m" in code and "from typing import Literal" in code
    assert "from __future__ import annotations" in code
    assert "RATE" not in code and "class Point" not in code  # only what the tool uses
    assert (folder / "requirements.txt").read_text() == "codeloop\n"
    metadata = json.loads((folder / "tool.json").read_text())
    assert metadata["name"] == "circle_area" and metadata["entry"] == "circle_area"
    assert metadata["inputs"]["unit"]["enum"] == ["m", "cm"]

    loaded = load_tool(folder)  # a local folder needs no trust flag
    assert isinstance(loaded, FunctionTool)
    assert loaded(2.0) == 12.566
    assert loaded.inputs == user_tools.circle_area.inputs
    assert loaded.to_code_prompt() == user_tools.circle_area.to_code_prompt()
    # a loaded tool can be saved again
    again = save_tool(loaded, tmp_path / "again")
    assert load_tool(again)(1.0) == 3.142


def test_name_and_description_overrides_survive(user_tools: Any, tmp_path: Path) -> None:
    loaded = load_tool(save_tool(user_tools.to_json, tmp_path / "dump"))
    assert loaded.name == "dump_json"
    assert loaded.description == "Serialize data as sorted JSON."
    assert loaded(data={"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_class_tool_round_trip(user_tools: Any, tmp_path: Path) -> None:
    loaded = load_tool(save_tool(user_tools.Greeter(), tmp_path / "greet"))
    assert type(loaded).__name__ == "Greeter"
    assert loaded(who="Ada") == "Hello Ada!"
    assert "from codeloop.tools import Tool" in (tmp_path / "greet" / "tool.py").read_text()


def test_builtin_tool_is_saved_as_a_reference(tmp_path: Path) -> None:
    from codeloop.tools.web import VisitWebpageTool

    folder = save_tool(VisitWebpageTool(), tmp_path / "visit")
    assert (folder / "tool.py").read_text() == "from codeloop.tools.web import VisitWebpageTool\n"
    assert load_tool(folder).name == "visit_webpage"


def test_not_self_contained_tools_are_refused_at_save(user_tools: Any, tmp_path: Path) -> None:
    with pytest.raises(ToolDefinitionError, match="not self-contained: it uses 'RATE'.*module user_tools"):
        save_tool(user_tools.with_global, tmp_path / "x")
    with pytest.raises(ToolDefinitionError, match="uses 'Point', which is defined outside it"):
        save_tool(user_tools.with_class, tmp_path / "y")
    with pytest.raises(ToolDefinitionError, match="needs constructor arguments \\(factor\\)"):
        save_tool(user_tools.NeedsArgs(2), tmp_path / "z")

    offset = 5

    @tool
    def closes_over(x: int) -> int:
        """Adds a captured offset.

        Args:
            x: A number.
        """
        return x + offset

    with pytest.raises(
        ToolDefinitionError, match="uses 'offset', a variable of the function it was defined in"
    ):
        save_tool(closes_over, tmp_path / "w")

    namespace: dict[str, Any] = {"tool": tool}
    exec(
        'def made_by_exec(x: int) -> int:\n    """Made by exec.\n\n    Args:\n        x: A number.\n    """\n    return x\n',
        namespace,
    )
    with pytest.raises(ToolDefinitionError, match="source code is not available"):
        save_tool(tool(namespace["made_by_exec"]), tmp_path / "v")


def test_broken_folders_name_the_file_and_line(user_tools: Any, tmp_path: Path) -> None:
    folder = save_tool(user_tools.weather, tmp_path / "weather")
    with pytest.raises(ToolLoadError, match="tool.json is missing"):
        load_tool(tmp_path)  # a folder without the files
    (folder / "tool.py").write_text("from codeloop.tools import tool\n\ndef weather(city:\n    pass\n")
    with pytest.raises(ToolLoadError) as info:
        load_tool(folder)
    assert f"{folder / 'tool.py'}, line 3: syntax error" in str(info.value)

    (folder / "tool.py").write_text("import numpy_that_is_not_installed\n")
    (folder / "requirements.txt").write_text("numpy-that-is-not-installed\n")
    with pytest.raises(ToolLoadError) as info:
        load_tool(folder)
    assert "tool.py, line 1: ModuleNotFoundError" in str(info.value)
    assert "pip install numpy-that-is-not-installed" in str(info.value)

    (folder / "tool.py").write_text("x = 1\n")
    with pytest.raises(ToolLoadError, match="defines no 'weather'"):
        load_tool(folder)
    (folder / "tool.json").write_text('{"name": "weather",\n "entry": }')
    with pytest.raises(ToolLoadError, match="tool.json, line 2: not valid JSON"):
        load_tool(folder)


def test_unknown_references(tmp_path: Path) -> None:
    with pytest.raises(ToolLoadError, match="not an existing folder, a git URL"):
        load_tool("./no/such/folder")
    with pytest.raises(ToolLoadError, match="taken as a Hugging Face Hub repo id.*trust_remote_code=True"):
        load_tool("someone/some-tool")


# --------------------------------------------------------------------------------------------- git


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(cwd or Path.cwd()),
    }
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="the git command is not installed")
def test_load_tool_from_a_local_bare_git_repository(user_tools: Any, tmp_path: Path) -> None:
    bare = tmp_path / "weather-tool.git"
    _git("init", "--quiet", "--bare", str(bare))
    work = tmp_path / "work"
    _git("clone", "--quiet", str(bare), str(work))
    save_tool(user_tools.weather, work)
    _git("add", ".", cwd=work)
    _git("commit", "--quiet", "-m", "weather tool v1", cwd=work)
    first = _git("rev-parse", "HEAD", cwd=work)
    (work / "tool.py").write_text((work / "tool.py").read_text().replace("Sunny", "Rainy"))
    _git("commit", "--quiet", "-am", "v2", cwd=work)
    _git("push", "--quiet", "origin", "HEAD", cwd=work)

    ref = f"git+file://{bare}"
    with pytest.raises(ToolLoadError, match="runs its Python code .* trust_remote_code=True"):
        load_tool(ref)
    cache = tmp_path / "cache"
    latest = load_tool(ref, trust_remote_code=True, cache_dir=cache)
    assert latest(city="Paris") == "Rainy in Paris, 21 C"
    pinned = load_tool(f"{ref}@{first}", trust_remote_code=True, cache_dir=cache)
    assert pinned(city="Paris") == "Sunny in Paris, 21 C"
    with pytest.raises(ToolLoadError, match="could not be cloned"):
        load_tool(f"git+file://{tmp_path}/missing.git", trust_remote_code=True, cache_dir=cache)
    with pytest.raises(ToolLoadError, match="Revision 'v9' does not exist"):
        load_tool(f"{ref}@v9", trust_remote_code=True, cache_dir=cache)


# --------------------------------------------------------------------------------------------- hub


class _Hub(BaseHTTPRequestHandler):
    """The part of the Hugging Face Hub HTTP API that create_repo, upload_folder and snapshot_download use."""

    repos: dict[str, dict[str, Any]] = {}  # "type/owner/name" -> {"files": {path: bytes}, "sha": str}
    calls: list[str] = []
    created: list[dict[str, Any]] = []  # the bodies of /api/repos/create, as the client sent them

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(
        self,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if raw is not None else "application/json"
        )
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _missing(self) -> None:
        _Hub.calls.append("-> 404")
        self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        path = unquote(urlsplit(self.path).path)
        _Hub.calls.append(f"POST {path}")
        if path == "/api/repos/create":
            data = json.loads(self._body())
            _Hub.created.append(data)
            key = f"{data.get('type') or 'model'}/{data['organization']}/{data['name']}"
            exists = key in _Hub.repos
            _Hub.repos.setdefault(key, {"files": {}, "sha": "0" * 40})
            prefix = "" if key.startswith("model/") else key.split("/")[0] + "s/"
            base = f"http://{self.headers['Host']}"
            self._reply(
                409 if exists else 200, {"url": f"{base}/{prefix}{data['organization']}/{data['name']}"}
            )
            return
        if path == "/api/validate-yaml":  # the README's metadata block is checked before a commit
            self._body()
            self._reply(200, {"errors": [], "warnings": []})
            return
        parts = path.split("/")  # /api/{type}s/{owner}/{name}/{action}/{rev}
        if len(parts) < 6:
            self._reply(404, {"error": f"no route {path}"})
            return
        key = f"{parts[2][:-1]}/{parts[3]}/{parts[4]}"
        if key not in _Hub.repos:
            self._missing()
            return
        if parts[5] == "preupload":
            files = json.loads(self._body())["files"]
            self._reply(
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                },
            )
        elif parts[5] == "commit":
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            repo = _Hub.repos[key]
            for line in lines:
                if line["key"] == "file":
                    repo["files"][line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            repo["sha"] = hashlib.sha1(
                json.dumps(sorted(repo["files"])).encode() + repo["sha"].encode()
            ).hexdigest()
            prefix = "" if key.startswith("model/") else parts[2] + "/"
            commit_url = f"http://{self.headers['Host']}/{prefix}{parts[3]}/{parts[4]}/commit/{repo['sha']}"
            self._reply(200, {"commitUrl": commit_url, "commitOid": repo["sha"]})
        else:
            self._reply(400, {"error": f"unsupported {parts[5]}"})

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        _Hub.calls.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            key = f"{parts[1][:-1]}/{parts[2]}/{parts[3]}"
            repo = _Hub.repos.get(key)
            if repo is None:
                self._missing()
                return
            if len(parts) >= 5 and parts[4] == "tree":
                self._reply(
                    200,
                    [
                        {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for p, b in sorted(repo["files"].items())
                    ],
                )
            else:
                self._reply(
                    200,
                    {
                        "id": f"{parts[2]}/{parts[3]}",
                        "sha": repo["sha"],
                        "private": False,
                        "siblings": [{"rfilename": p} for p in sorted(repo["files"])],
                    },
                )
            return
        kind = "model"
        if parts[0] in ("spaces", "datasets"):
            kind, parts = parts[0][:-1], parts[1:]
        repo = _Hub.repos.get(f"{kind}/{parts[0]}/{parts[1]}")
        if repo is None or parts[2] != "resolve":
            self._missing()
            return
        name = "/".join(parts[4:])
        if name not in repo["files"]:
            self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return
        content = repo["files"][name]
        self._reply(
            200,
            raw=content,
            headers={"X-Repo-Commit": repo["sha"], "ETag": f'"{hashlib.sha1(content).hexdigest()}"'},
        )

    do_HEAD = do_GET


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pytest.importorskip("huggingface_hub", reason="the Hub tests need the `hub` extra")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    # huggingface_hub reads HF_HUB_CACHE once, at import; another test may have imported it already.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    _Hub.repos.clear()
    _Hub.calls.clear()
    _Hub.created.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_to_hub_and_load_the_seed_reference(user_tools: Any, hub: str, tmp_path: Path) -> None:
    # The seed's one-liner, `load_tool("m-ric/smolagents-weather-tool")`, against the local Hub.
    url = user_tools.weather.push_to_hub("m-ric/smolagents-weather-tool", endpoint=hub, token="hf_test")
    assert "/commit/" in url
    stored = _Hub.repos["model/m-ric/smolagents-weather-tool"]["files"]
    assert sorted(stored) == ["README.md", "requirements.txt", "tool.json", "tool.py"]
    assert b"def weather(city: str) -> str:" in stored["tool.py"]
    assert [c.get("sdk") for c in _Hub.created] == [None]  # a model repo has no Space SDK

    with pytest.raises(ToolLoadError, match="trust_remote_code=True"):
        load_tool("m-ric/smolagents-weather-tool", hub_endpoint=hub)
    weather_tool = load_tool("m-ric/smolagents-weather-tool", trust_remote_code=True, hub_endpoint=hub)
    assert weather_tool(city="Lyon") == "Sunny in Lyon, 21 C"
    assert any(c.startswith("GET /m-ric/smolagents-weather-tool/resolve/") for c in _Hub.calls)

    with pytest.raises(
        ToolLoadError, match="'nobody/nothing' was not found \\(as a model or a space repo\\)"
    ):
        load_tool("nobody/nothing", trust_remote_code=True, hub_endpoint=hub)


def test_hub_space_repos_are_found_too(user_tools: Any, hub: str) -> None:
    import tempfile

    from codeloop.tools.sharing import upload_folder_to_hub

    with tempfile.TemporaryDirectory() as folder:
        save_tool(user_tools.Greeter(), folder)
        upload_folder_to_hub(folder, "team/greeter", repo_type="space", endpoint=hub, token="hf_test")
    assert "space/team/greeter" in _Hub.repos and "model/team/greeter" not in _Hub.repos
    assert [c.get("sdk") for c in _Hub.created] == ["static"]  # the Hub refuses a Space without one
    greeter = load_tool("team/greeter", trust_remote_code=True, hub_endpoint=hub)
    assert greeter(who="Grace") == "Hello Grace!"


# -------------------------------------------------------------------------------------------- dict


def test_to_dict_from_dict(user_tools: Any) -> None:
    data = user_tools.circle_area.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert data["parameters"]["required"] == ["radius"]
    assert "def circle_area" in data["code"]
    with pytest.raises(ToolLoadError, match="carries Python code.*trust_remote_code=True"):
        Tool.from_dict(data)
    rebuilt = Tool.from_dict(data, trust_remote_code=True)
    assert rebuilt(radius=1.0) == 3.142

    schema_only = user_tools.with_global.to_dict()  # not self-contained: the schema still travels
    assert "code" not in schema_only and schema_only["name"] == "with_global"
    with pytest.raises(ToolDefinitionError, match="not self-contained"):
        user_tools.with_global.to_dict(include_code=True)
    with pytest.raises(ToolLoadError, match="holds only its schema; pass function=..."):
        Tool.from_dict(schema_only)
    remote = Tool.from_dict(schema_only, function=lambda x: x * 100)
    assert remote.name == "with_global" and remote(x=2) == 200
    assert remote.validate_arguments({"x": "3"}) == {"x": 3}
    assert remote.parameters_schema == user_tools.with_global.parameters_schema


def test_tool_source_is_valid_python(user_tools: Any) -> None:
    for candidate in (user_tools.circle_area, user_tools.to_json, user_tools.weather, user_tools.Greeter()):
        text, entry, requirements = tool_source(candidate)
        compile(text, "tool.py", "exec")
        assert entry in text and requirements == ["codeloop"]


def test_agent_push_to_hub_and_from_hub(user_tools: Any, hub: str) -> None:
    from codeloop import CodeAgent
    from codeloop.agent_io import load_agent_from_hub, push_agent_to_hub
    from codeloop.testing import ScriptedModel

    agent = CodeAgent(
        tools=[user_tools.weather],
        model=ScriptedModel(["unused"]),
        name="forecaster",
        max_steps=5,
        verbosity_level=0,
    )
    push_agent_to_hub(agent, "team/forecaster", endpoint=hub, token="hf_test")
    assert "tools/weather/tool.py" in _Hub.repos["model/team/forecaster"]["files"]
    with pytest.raises(ToolLoadError, match="runs its tools' Python code.*trust_remote_code=True"):
        load_agent_from_hub("team/forecaster", endpoint=hub)
    model = ScriptedModel(["```python\nfinal_answer(weather('Nice'))\n```"])
    loaded = load_agent_from_hub("team/forecaster", trust_remote_code=True, endpoint=hub, model=model)
    assert loaded.name == "forecaster" and loaded.max_steps == 5
    assert loaded.run("Weather in Nice?") == "Sunny in Nice, 21 C"


def test_a_tool_from_dict_with_a_function_takes_positional_arguments_as_its_prompt_shows() -> None:
    @tool
    def scale(value: float, factor: float = 2.0, unit: str = "m") -> str:
        """Scale a length.

        Args:
            value: The length.
            factor: How much to multiply it by.
            unit: The unit to print.
        """
        return f"{value * factor}{unit}"

    remote = Tool.from_dict(
        scale.to_dict(include_code=False),
        function=lambda value, factor=2.0, unit="m": f"{value * factor}{unit}",
    )
    assert remote.to_code_prompt().startswith(
        "def scale(value: float, factor: float = 2.0, unit: str = 'm') -> str:"
    )
    assert remote(3.0) == remote(value=3.0) == "6.0m"
    assert remote(3.0, 3.0, unit="cm") == "9.0cm"
    with pytest.raises(TypeError, match=r"scale\(\) got multiple values for argument 'value'"):
        remote(1.0, value=2.0)
    with pytest.raises(TypeError, match=r"scale\(\) takes at most 3 positional arguments but 4 were given"):
        remote(1.0, 2.0, "m", "extra")
    agent = CodeAgent(
        tools=[remote],
        model=ScriptedModel(["```python\nfinal_answer(scale(1.5, 4.0))\n```"]),
        executor="local",
        verbosity_level=0,
    )
    assert agent.run("scale it") == "6.0m"  # what a CodeAgent's code does with the stub it was shown
