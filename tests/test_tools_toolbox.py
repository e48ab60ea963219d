"""The default toolbox against servers on 127.0.0.1: pages made by the test, search APIs speaking their JSON,
DuckDuckGo's HTML endpoint behind a local TLS-intercepting proxy (the real ddgs client, offline), and a
MediaWiki API stand-in. No test touches the internet."""

from __future__ import annotations

import datetime
import io
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from codeloop.tools import Tool
from codeloop.tools.toolbox import (
    BUILTIN_TOOLS,
    SpeechToTextTool,
    UserInputTool,
    base_tools,
    load_builtin_tool,
    load_builtin_tools,
)
from codeloop.tools.web import VisitWebpageTool, WebSearchTool, WebToolError, WikipediaSearchTool

PAGE = """<html><head><title>Pont des Arts</title><style>body{color:red}</style></head>
<body><script>alert('no')</script><h1>Pont des Arts</h1>
<p>The bridge is <b>155 m</b> long. See <a href="/other">the other page</a>.</p>
<ul><li>Opened 1804</li><li>Rebuilt 1984</li></ul></body></html>"""


class _Site(BaseHTTPRequestHandler):
    """Routes made by the tests. Search APIs record what they were sent in `requests`."""

    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        _Site.requests.append(
            {"method": "GET", "path": url.path, "query": query, "headers": dict(self.headers)}
        )
        if url.path == "/page.html":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif url.path == "/latin1.html":
            self._send(200, "<p>Café crème</p>".encode("latin-1"), "text/html; charset=iso-8859-1")
        elif url.path == "/notes.txt":
            self._send(200, b"plain\n\n\n\nnotes", "text/plain")
        elif url.path == "/moved":
            self._send(302, b"", "text/plain", {"Location": "/page.html"})
        elif url.path == "/missing":
            self._send(404, b"nope", "text/plain")
        elif url.path == "/photo.png":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048, "image/png")
        elif url.path == "/huge.txt":
            self._send(200, b"x" * 3_000_000, "text/plain")
        elif url.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"<p>drip</p>")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif url.path == "/res/v1/web/search":
            if self.headers.get("X-Subscription-Token") != "brave-key":
                self._json({"error": "bad key"}, 401)
                return
            self._json(
                {
                    "web": {
                        "results": [
                            {
                                "title": "Leopard",
                                "url": "https://b.example/leopard",
                                "description": "Fast <strong>cat</strong>",
                            },
                            {"title": "Bridge", "url": "https://b.example/bridge", "description": "155 m"},
                        ]
                    }
                }
            )
        elif url.path == "/w/api.php":
            self._wikipedia(query)
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        _Site.requests.append(
            {"method": "POST", "path": self.path, "body": body, "headers": dict(self.headers)}
        )
        if self.path == "/search" and self.headers.get("X-API-KEY") == "serper-key":
            if body["q"] == "too many":
                self._json({"message": "slow down"}, 429)
                return
            self._json(
                {"organic": [{"title": "Serper hit", "link": "https://s.example", "snippet": "found it"}]}
            )
        elif self.path == "/search" and self.headers.get("x-api-key") == "exa-key":
            self._json(
                {"results": [{"title": "Exa hit", "url": "https://e.example", "text": "  exa text  "}]}
            )
        else:
            self._json({"error": "unauthorized"}, 403)

    def _wikipedia(self, query: dict[str, str]) -> None:
        if query.get("list") == "search":
            hits = [] if query["srsearch"] == "zzxq" else [{"title": "Pont des Arts", "pageid": 1}]
            self._json({"query": {"search": hits}})
        elif query.get("prop", "").startswith("extracts"):
            text = "The Pont des Arts is a pedestrian bridge in Paris."
            if "exintro" not in query:
                text += "\n\nHistory\nBuilt between 1802 and 1804."
            self._json(
                {
                    "query": {
                        "pages": [
                            {
                                "title": query["titles"],
                                "extract": text,
                                "fullurl": "https://en.wikipedia.org/wiki/Pont_des_Arts",
                            }
                        ]
                    }
                }
            )
        else:
            self._json({"error": {"info": "unknown action"}})


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# ------------------------------------------------------------------------------------------- pages


def test_visit_webpage_converts_html_to_markdown(site: str) -> None:
    visit = VisitWebpageTool()
    text = visit(f"{site}/page.html")
    assert text.startswith("# Pont des Arts")
    assert "**155 m**" in text and "[the other page](/other)" in text
    assert "- Opened 1804" in text
    assert "alert" not in text and "color:red" not in text
    assert visit(url=f"{site}/moved").startswith("# Pont des Arts")  # redirects are followed
    assert visit(f"{site}/latin1.html") == "Café crème"
    assert visit(f"{site}/notes.txt") == "plain\n\nnotes"


def test_visit_webpage_refuses_what_it_cannot_read(site: str) -> None:
    visit = VisitWebpageTool()
    for url, fragment in [
        ("file:///etc/passwd", "uses 'file:'"),
        ("ftp://example.com/x", "uses 'ftp:'"),
        ("example.com/page", "has no scheme"),
        (f"{site}/missing", "answered HTTP 404"),
        (f"{site}/photo.png", "binary content (image/png, 2,056 bytes)"),
        ("http://127.0.0.1:1/unreachable", "could not be fetched"),
    ]:
        with pytest.raises(WebToolError) as info:
            visit(url)
        assert fragment in str(info.value), (url, str(info.value))


def test_visit_webpage_caps_size_and_time(site: str) -> None:
    capped = VisitWebpageTool(max_bytes=100_000, max_chars=5_000)
    text = capped(f"{site}/huge.txt")
    assert text.startswith("x" * 5_000)
    assert (
        "only the first 100,000 bytes were downloaded" in text and "95,000 more characters were cut" in text
    )

    slow = VisitWebpageTool(timeout=0.8)
    start = time.monotonic()
    with pytest.raises(WebToolError, match="did not finish loading within 0.8 s"):
        slow(f"{site}/slow")
    assert time.monotonic() - start < 2.0  # the limit is on the whole fetch, not on each read


def test_visit_webpage_async(site: str) -> None:
    import asyncio

    visit = VisitWebpageTool()
    assert visit.is_async
    assert asyncio.run(visit.acall(url=f"{site}/notes.txt")).startswith("plain")


# ---------------------------------------------------------------------------------------- search APIs


def test_web_search_engines_with_api_keys(site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    brave = WebSearchTool("brave", api_key="brave-key", base_url=site, min_interval=0)
    assert brave("leopard speed") == [
        {"title": "Leopard", "url": "https://b.example/leopard", "snippet": "Fast cat"},
        {"title": "Bridge", "url": "https://b.example/bridge", "snippet": "155 m"},
    ]
    sent = _Site.requests[-1]
    assert sent["query"] == {"q": "leopard speed", "count": "10"}

    serper = WebSearchTool("serper", api_key="serper-key", base_url=site, max_results=3, min_interval=0)
    assert serper("pont") == [{"title": "Serper hit", "url": "https://s.example", "snippet": "found it"}]
    assert _Site.requests[-1]["body"] == {"q": "pont", "num": 3}
    with pytest.raises(WebToolError, match="rate limited \\(HTTP 429\\)"):
        serper("too many")

    exa = WebSearchTool("exa", api_key="exa-key", base_url=site, min_interval=0)
    assert exa("bridge") == [{"title": "Exa hit", "url": "https://e.example", "snippet": "exa text"}]

    with pytest.raises(WebToolError, match="refused the API key \\(HTTP 401\\)"):
        WebSearchTool("brave", api_key="wrong", base_url=site)("x")
    with pytest.raises(ValueError, match="needs an API key: pass api_key=... or set SERPER_API_KEY"):
        WebSearchTool("serper")
    with pytest.raises(ValueError, match="unknown search engine 'bing'"):
        WebSearchTool("bing")

    # "auto" picks the engine whose key is set, DuckDuckGo otherwise
    for var in ("BRAVE_API_KEY", "SERPER_API_KEY", "EXA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert WebSearchTool().engine == "duckduckgo"
    monkeypatch.setenv("EXA_API_KEY", "exa-key")
    assert WebSearchTool().engine == "exa"
    from codeloop.tools import DuckDuckGoSearchTool

    ddg = DuckDuckGoSearchTool()  # the seeds' name: always DuckDuckGo, called web_search
    assert ddg.engine == "duckduckgo" and ddg.name == "web_search"


def test_web_search_rate_limit_spaces_queries(site: str) -> None:
    search = WebSearchTool("serper", api_key="serper-key", base_url=site, min_interval=0.3)
    start = time.monotonic()
    for _ in range(3):
        search("pont")
    assert time.monotonic() - start >= 0.6


# DuckDuckGo: ddgs speaks HTTPS to html.duckduckgo.com; a CONNECT proxy on 127.0.0.1 terminates that TLS with a
# throwaway certificate (ddgs is told verify=False) and answers with a page shaped like DuckDuckGo's HTML results.

DDG_RESULTS = """<html><body>
<div class="result results_links"><div class="links_main result__body">
<h2 class="result__title"><a class="result__a" href="https://en.wikipedia.org/wiki/Leopard">Leopard - Wikipedia</a></h2>
<a class="result__snippet" href="https://en.wikipedia.org/wiki/Leopard">Leopards run at up to 58 km/h.</a>
</div></div>
<div class="result results_links"><div class="links_main result__body">
<h2 class="result__title"><a class="result__a" href="https://example.org/bridge">Pont des Arts length</a></h2>
<a class="result__snippet" href="https://example.org/bridge">The bridge is 155 m long.</a>
</div></div></body></html>"""


class _InterceptingProxy:
    def __init__(self, respond: Callable[[str, bytes], tuple[int, bytes]]) -> None:
        self.respond = respond
        self.seen: list[tuple[str, str, bytes]] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = _throwaway_certificate()
        self.context.load_cert_chain(cert, key)
        self.context.set_alpn_protocols(["http/1.1"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            head = _read_head(conn.makefile("rb"))
            if not head or not head[0].startswith("CONNECT "):
                return
            target = head[0].split()[1]
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self.context.wrap_socket(conn, server_side=True) as tls:
                stream = tls.makefile("rb")
                request = _read_head(stream)
                headers = {h.split(":", 1)[0].lower(): h.split(":", 1)[1].strip() for h in request[1:]}
                body = stream.read(int(headers.get("content-length", 0) or 0))
                self.seen.append((target, request[0], body))
                status, payload = self.respond(target, body)
                tls.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {len(payload)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + payload
                )

    def close(self) -> None:
        self.listener.close()


def _read_head(stream: io.BufferedReader | Any) -> list[str]:
    lines = []
    while True:
        line = stream.readline()
        if not line or line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


def _throwaway_certificate() -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codeloop test proxy")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    folder = tempfile.mkdtemp()
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def test_web_search_duckduckgo_through_ddgs() -> None:
    pytest.importorskip("ddgs", reason="DuckDuckGo search needs the `toolbox` extra")

    def respond(target: str, body: bytes) -> tuple[int, bytes]:
        if b"refuse+me" in body:
            return 403, b"<html>blocked</html>"
        if b"nothing+here" in body:
            return 200, b"<html><body>No results.</body></html>"
        return 200, DDG_RESULTS.encode()

    proxy = _InterceptingProxy(respond)
    try:
        search = WebSearchTool(
            "duckduckgo", proxy=proxy.url, verify=False, max_results=5, min_interval=0, timeout=5
        )
        results = search("leopard top speed")
        assert results == [
            {
                "title": "Leopard - Wikipedia",
                "url": "https://en.wikipedia.org/wiki/Leopard",
                "snippet": "Leopards run at up to 58 km/h.",
            },
            {
                "title": "Pont des Arts length",
                "url": "https://example.org/bridge",
                "snippet": "The bridge is 155 m long.",
            },
        ]
        target, request_line, body = proxy.seen[0]
        assert target == "html.duckduckgo.com:443" and request_line.startswith("POST /html/")
        assert b"q=leopard+top+speed" in body
        for query in ("nothing here", "refuse me"):
            with pytest.raises(WebToolError, match=f"DuckDuckGo returned no results for '{query}'.*refuses"):
                search(query)
    finally:
        proxy.close()


# ------------------------------------------------------------------------------------------ wikipedia


def test_wikipedia_search(site: str) -> None:
    wiki = WikipediaSearchTool(base_url=site)
    text = wiki("pont des arts")
    assert text == (
        "# Pont des Arts\nhttps://en.wikipedia.org/wiki/Pont_des_Arts\n\n"
        "The Pont des Arts is a pedestrian bridge in Paris."
    )
    full = WikipediaSearchTool(base_url=site, content="text")("pont des arts")
    assert "Built between 1802 and 1804." in full
    assert "No Wikipedia article matches 'zzxq'" in wiki("zzxq")
    searched = [r for r in _Site.requests if r["path"] == "/w/api.php"]
    assert searched[0]["query"]["srsearch"] == "pont des arts"
    with pytest.raises(WebToolError, match="could not be reached"):
        WikipediaSearchTool(base_url="http://127.0.0.1:1")("x")


# ----------------------------------------------------------------------------------- registry & others


def test_registry_and_base_tools() -> None:
    assert set(BUILTIN_TOOLS) == {
        "web_search",
        "visit_webpage",
        "wikipedia_search",
        "python_interpreter",
        "user_input",
        "final_answer",
        "speech_to_text",
    }
    tools = load_builtin_tools("visit_webpage, wikipedia_search,final_answer")
    assert [t.name for t in tools] == ["visit_webpage", "wikipedia_search", "final_answer"]
    assert all(isinstance(t, Tool) for t in tools)
    with pytest.raises(ValueError, match="unknown built-in tool 'web_serch'; known: web_search"):
        load_builtin_tools(["web_serch"])
    assert [t.name for t in base_tools("code")] == ["web_search", "visit_webpage", "wikipedia_search"]
    assert base_tools("tool_calling")[-1].name == "python_interpreter"
    for name in BUILTIN_TOOLS:  # every built-in renders for both agent kinds
        built = load_builtin_tool(name)
        assert built.to_code_prompt().startswith(f"def {name}(")
        assert built.to_function_spec()["parameters"]["type"] == "object"


def test_user_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("blue\n"))
    assert UserInputTool()(question="Favourite colour?") == "blue"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(RuntimeError, match="standard input is closed"):
        UserInputTool()(question="Anyone?")
    asked: list[str] = []
    assert UserInputTool(ask=lambda q: asked.append(q) or "42")("How many?") == "42"
    assert asked == ["How many? => Type your answer here: "]


def test_speech_to_text_loads_lazily() -> None:
    import importlib.util

    stt = SpeechToTextTool()  # building it loads nothing
    assert stt.name == "speech_to_text" and stt._pipeline is None
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(ImportError, match="pip install 'codeloop\\[speech\\]'"):
            stt("clip.wav")


def test_python_interpreter_runs_code_in_an_executor() -> None:
    from codeloop.errors import ExecutionError
    from codeloop.tools.toolbox import PythonInterpreterTool

    interpreter = PythonInterpreterTool(["statistics"], executor="local")
    try:
        assert "statistics" in interpreter.description
        assert interpreter('x = 6\nprint("six")\nx * 7') == "Stdout:\nsix\nOutput: 42"
        assert interpreter(code="import statistics\nstatistics.mean([x, 8])") == "Output: 7"  # x persisted
        with pytest.raises(ExecutionError, match="Import of 'os' is not allowed"):
            interpreter("import os")
        with pytest.raises(ExecutionError, match="ZeroDivisionError"):
            interpreter("1 / 0")
    finally:
        interpreter.close()
