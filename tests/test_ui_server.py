"""The web UI's server without a browser: who may connect (loopback Host, token, same origin), the refusal to
serve a network without a token, lazy imports, and how answers are described. The chat itself is tested in a
real browser in test_ui_chat.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="needs the ui extra (starlette, uvicorn, sse-starlette)")

from starlette.testclient import TestClient  # noqa: E402

from codeloop import CodeAgent  # noqa: E402
from codeloop.cli import main  # noqa: E402
from codeloop.models.openai import OpenAIModel  # noqa: E402
from codeloop.ui import GradioUI, create_app  # noqa: E402
from codeloop.ui.chat import AgentSource  # noqa: E402
from codeloop.ui.chat_events import describe_output  # noqa: E402
from codeloop.ui.server import check_exposure  # noqa: E402

TOKEN = "0123456789abcdef0123"


def _agent(store: Any = None) -> CodeAgent:
    model = OpenAIModel("gpt-4o", api_base="http://127.0.0.1:9/v1", api_key="k")
    return CodeAgent([], model, executor="local", verbosity_level=0, store=store)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(lambda: _agent(tmp_path / "runs.db"), store=tmp_path / "runs.db", token=TOKEN)
    with TestClient(app, base_url="http://192.168.1.20:7860", follow_redirects=False) as client:
        yield client


def test_a_network_address_without_a_token_is_refused_before_serving() -> None:
    with pytest.raises(ValueError, match=r"'0\.0\.0\.0' lets anyone .* pass a token"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(ValueError, match="too short"):
        check_exposure("0.0.0.0", "short")
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("0.0.0.0", TOKEN)


def test_cli_ui_on_a_network_address_without_a_token_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODELOOP_UI_TOKEN", raising=False)
    assert main(["ui", "--host", "0.0.0.0", "--agent", "no_such_file.py:make"]) == 2
    assert "pass a token (--token or $CODELOOP_UI_TOKEN" in capsys.readouterr().err


def test_cli_ui_refuses_a_file_size_limit_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--max-file-mb", "0"]) == 2
    assert "--max-file-mb must be a positive number of MiB, got 0.0" in capsys.readouterr().err


def test_cli_ui_names_a_bad_agent_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--agent", "just_a_name"]) == 2
    assert (
        "give a saved agent folder, 'package.module:name' or 'path/to/file.py:name'"
        in capsys.readouterr().err
    )


def test_every_request_needs_the_token_the_event_stream_too(guarded: TestClient) -> None:
    for path in ("/", "/api/chat/state", "/api/chat/events", "/static/app.js"):
        response = guarded.get(path)
        assert response.status_code == 401, path
        assert "token is needed" in response.text
    assert guarded.post("/api/chat/send", json={"task": "x"}).status_code == 401
    wrong = guarded.get("/", params={"token": TOKEN[:-1] + "X"})
    assert wrong.status_code == 401


def test_the_token_in_the_address_becomes_a_cookie(guarded: TestClient) -> None:
    response = guarded.get("/", params={"token": TOKEN, "keep": "1"})
    assert response.status_code == 303
    assert response.headers["location"] == "/?keep=1"  # the token leaves the address bar (and history)
    assert "HttpOnly" in response.headers["set-cookie"]
    page = guarded.get("/")  # the client keeps the cookie, as a browser would
    assert page.status_code == 200 and "<textarea" in page.text
    assert guarded.get("/api/chat/state").json()["agent"] == "CodeAgent"


def test_a_bearer_header_is_accepted() -> None:
    app = create_app(None, token=TOKEN)
    with TestClient(app, base_url="http://192.168.1.20:7860") as client:
        assert client.get("/api/chat/state", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/api/chat/state", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_without_a_token_only_loopback_hosts_are_answered() -> None:
    app = create_app(None)
    with TestClient(app, base_url="http://attacker.example") as client:  # DNS rebinding to 127.0.0.1
        response = client.get("/")
        assert response.status_code == 403 and "loopback" in response.text
    for base in ("http://127.0.0.1:7860", "http://localhost:7860", "http://[::1]:7860"):
        with TestClient(app, base_url=base) as client:
            assert client.get("/").status_code == 200, base


def test_changes_from_another_origin_are_refused(tmp_path: Path) -> None:
    app = create_app(lambda: _agent(None))
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        client.get("/")
        response = client.post("/api/chat/stop", json={}, headers={"Origin": "http://evil.example"})
        assert response.status_code == 403 and "cross-origin" in response.text
        same = client.post("/api/chat/stop", json={}, headers={"Origin": "http://127.0.0.1:7860"})
        assert same.status_code == 200 and same.json() == {"stopping": False}


def test_api_errors_say_what_to_do(tmp_path: Path) -> None:
    app = create_app(lambda: _agent(None))
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        assert "reload the page" in client.post("/api/chat/send", json={"task": "x"}).json()["error"]
        client.get("/")
        assert "task is empty" in client.post("/api/chat/send", json={"task": "  "}).json()["error"]
        response = client.post("/api/chat/approve", json={"run_id": "nope", "decisions": {"1.1": True}})
        assert response.status_code == 409 and "not awaiting approval" in response.json()["error"]
        assert client.post("/api/chat/upload", data={"x": "1"}).status_code == 400


def test_an_image_answer_becomes_a_png_data_url() -> None:
    image = pytest.importorskip("PIL.Image").new("RGB", (3, 2), "blue")
    described = describe_output(image, keep_file=lambda path: "unused")
    assert described["text"] == "(an image, 3x2)"
    [url] = described["images"]
    assert url.startswith("data:image/png;base64,")
    plain = describe_output({"a": 1}, keep_file=lambda path: "unused")
    assert (plain["images"], plain["text"]) == ([], '{\n  "a": 1\n}')


def test_only_files_under_the_download_folders_are_offered(tmp_path: Path) -> None:
    from codeloop.ui.chat import ChatSession

    allowed = tmp_path / "out"
    allowed.mkdir()
    report = allowed / "report.csv"
    report.write_text("a,b\n")
    session = ChatSession("secret", AgentSource(_agent()), tmp_path / "session", [allowed])
    described = describe_output(str(report), keep_file=session.keep_file)
    assert [f["name"] for f in described["files"]] == ["report.csv"]
    # a path the model names elsewhere (a prompt-injected "/etc/passwd", a key file) is only text
    elsewhere = tmp_path / "secret.key"
    elsewhere.write_text("k")
    for path in (elsewhere, allowed / ".." / "secret.key"):
        assert describe_output(str(path), keep_file=session.keep_file)["files"] == []


def test_gradio_ui_shares_one_agent_and_refuses_a_public_tunnel() -> None:
    agent = _agent()
    ui = GradioUI(agent)
    with pytest.raises(ValueError, match="share=True .* token"):
        ui.launch(share=True)
    source = AgentSource(agent)
    assert source.new_agent() is agent and source.new_agent() is agent
    with pytest.raises(TypeError, match="a function returning a new agent"):
        AgentSource(42)


def test_importing_codeloop_ui_loads_no_web_framework() -> None:
    probe = (
        "import sys, codeloop, codeloop.ui; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'sse_starlette', 'codeloop.ui.server') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_extra_names_the_install_command() -> None:
    probe = (
        "import sys; sys.modules['sse_starlette'] = None\n"
        "import codeloop.ui\n"
        "try:\n    codeloop.ui.create_app(None)\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "pip install 'codeloop[ui]'" in out


def test_static_assets_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")
    root = Path(__file__).resolve().parent.parent
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "ui/static/*" in package_data["codeloop"]
    static = root / "src" / "codeloop" / "ui" / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "app.css"}
    assert "http" not in (static / "index.html").read_text().split("<body>")[0]  # nothing from a CDN
