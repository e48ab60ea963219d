"""The web UI's ASGI app: chat and approvals (chat.py), the run browser (runs.py), auth and static files.

`create_app` builds a Starlette app; `launch` serves it with uvicorn. Bound to a loopback address (the default,
127.0.0.1) the app answers only requests whose Host is a loopback name (a web page elsewhere cannot reach it
through DNS rebinding). Bound to any other address it needs a token, checked on every request, the event
stream included: `?token=...` once (the page then keeps it in a cookie), an `Authorization: Bearer` header, or
the cookie. Requests that change something must come from the app's own pages (their Origin is checked).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from .chat import SESSION_COOKIE, AgentSource, ChatHub, ChatSession, sse_item
from .chat_events import highlight_css

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

__all__ = ["create_app", "launch", "check_exposure", "TOKEN_COOKIE", "STATIC_DIR"]

TOKEN_COOKIE = "codeloop_ui_token"
STATIC_DIR = Path(__file__).parent / "static"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_log = logging.getLogger("codeloop.ui")


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback `host` without a token (anyone on the network could run code)."""
    if token is not None and len(token) < 16:
        raise ValueError("the UI token is too short: use at least 16 characters, e.g. `openssl rand -hex 16`")
    if not _is_loopback(host) and not token:
        raise ValueError(
            f"serving the UI on {host!r} lets anyone who can reach it run the agent (and its code): pass a "
            "token (--token or $CODELOOP_UI_TOKEN; token=... in Python), or bind to 127.0.0.1"
        )


class _Guard:
    """ASGI middleware: the token (or, without one, a loopback Host), and same-origin for changes."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        problem = self._problem(scope, headers, host)
        if problem is not None:
            status, text = problem
            if status == 303:  # a valid ?token=: keep it in a cookie and drop it from the address bar
                query = urlencode(
                    [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode()) if k != "token"]
                )
                location = scope["path"] + (f"?{query}" if query else "")
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                await _respond(send, 303, "", [("location", location), ("set-cookie", cookie)])
            else:
                await _respond(send, status, text, [])
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: dict[str, Any], headers: dict[str, str], host: str) -> tuple[int, str] | None:
        if self.token is None:
            hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if hostname.lower() not in _LOOPBACK_NAMES and not _is_loopback(hostname):
                return 403, (
                    f"this UI serves only its own machine (Host {host!r} is not a loopback name); to serve it "
                    "on a network, start it with a token"
                )
        else:
            query = dict(parse_qsl(scope.get("query_string", b"").decode()))
            cookies = _cookies(headers.get("cookie", ""))
            bearer = headers.get("authorization", "")
            given = [
                query.get("token"),
                cookies.get(TOKEN_COOKIE),
                bearer[7:] if bearer.lower().startswith("bearer ") else None,
            ]
            if not any(g and hmac.compare_digest(g.encode(), self.token.encode()) for g in given):
                return 401, "a token is needed: open the URL the server printed (it ends in ?token=...)"
            if query.get("token") and scope.get("method") == "GET" and not scope["path"].startswith("/api/"):
                return 303, ""
        origin = headers.get("origin")
        if scope.get("method") not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            if origin.split("://", 1)[-1] != host:
                return 403, f"cross-origin request refused (Origin {origin!r}, Host {host!r})"
        return None


def _cookies(header: str) -> dict[str, str]:
    found = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


async def _respond(send: Any, status: int, text: str, headers: list[tuple[str, str]]) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _run_browser_routes(store: Any) -> list[BaseRoute]:
    """The run browser's routes when its module is present (it is built alongside the chat)."""
    try:
        from . import runs  # type: ignore[attr-defined]
    except ImportError:
        return []
    routes: list[BaseRoute] = runs.run_browser_routes(store)
    return routes


def _resolve_store(store: Any, source: AgentSource | None) -> Any:
    if store is not None:
        from ..store.binding import AgentStore

        return AgentStore(store).store
    if source is not None and source.shared is not None:
        return source.shared.store
    from ..store.binding import AgentStore

    return AgentStore("default").store


def create_app(
    agent_factory: Any = None,
    *,
    store: Any = None,
    token: str | None = None,
    title: str = "codeloop",
    download_dirs: Sequence[str | Path] | None = None,
    max_file_mb: float = 50,
) -> Starlette:
    """The UI as an ASGI app (Starlette). `agent_factory`: a function returning a new agent (one per browser
    session), an agent instance (shared: sessions take turns on it), or None (run browser only). `store`: the
    run store the run browser reads (a path, URL or Store; default: the shared agent's, else the default
    store). `token`: required on every request when given (see `launch`). `download_dirs`: a final answer naming a
    file under one of these folders gets a download link (default: the system's temporary folder).
    `max_file_mb`: files the agent's code writes are offered after each step up to this size (larger ones are
    named, not copied)."""
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    if token is not None:
        check_exposure("127.0.0.1", token)
    if not (isinstance(max_file_mb, int | float) and max_file_mb > 0):
        raise ValueError(f"max_file_mb must be a positive number of MiB, got {max_file_mb!r}")
    source = None if agent_factory is None else AgentSource(agent_factory)
    import tempfile

    folders = [tempfile.gettempdir()] if download_dirs is None else list(download_dirs)
    hub = ChatHub(source, download_dirs=[Path(f) for f in folders], max_file_mb=max_file_mb)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace("{{title}}", title)
    css = highlight_css()

    def session_of(request: Request) -> ChatSession:
        found = hub.session(request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise _Problem(400, "no chat session: reload the page" if source else "no agent is configured")
        return found

    async def index(request: Request) -> Response:
        secret = request.cookies.get(SESSION_COOKIE)
        fresh = hub.session(secret) is None
        if fresh:
            secret = secrets.token_urlsafe(24)
        hub.session(secret, create=True)
        response = HTMLResponse(page)
        if fresh and source is not None:
            response.set_cookie(SESSION_COOKIE, secret or "", httponly=True, samesite="strict")
        return response

    async def state(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        if source is None:
            return JSONResponse(
                {"agent": None, "error": "no agent is configured: start with --agent", "runs": []}
            )
        session = session_of(request)
        await run_in_threadpool(session.ensure_agent)  # a slow factory must not stall other pages
        described = await run_in_threadpool(hub.state, session)
        return JSONResponse({**described, "run_browser": bool(browsing)})

    async def events(request: Request) -> Response:
        import asyncio

        session = session_of(request)
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        position = int(after) if after.isdigit() else 0

        async def stream() -> Any:
            nonlocal position
            while True:
                waiter = asyncio.Event()
                items = session.since(position, waiter)
                try:
                    if not items:
                        await waiter.wait()
                        continue
                finally:
                    session.forget(waiter)
                for item in items:
                    position = item["seq"]
                    yield sse_item(item)

        return EventSourceResponse(stream(), ping=15)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise _Problem(400, "send a JSON object") from None
        if not isinstance(data, dict):
            raise _Problem(400, "send a JSON object")
        return data

    async def send_task(request: Request) -> Response:
        session = session_of(request)
        task = (await body_of(request)).get("task")
        if not isinstance(task, str) or not task.strip():
            raise _Problem(400, "the task is empty: say what the agent should do")
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(session.ensure_agent)
        _start(lambda: session.run_task(task))
        return JSONResponse({"started": True})

    async def stop(request: Request) -> Response:
        return JSONResponse({"stopping": session_of(request).interrupt()})

    async def approve(request: Request) -> Response:
        session = session_of(request)
        data = await body_of(request)
        decisions = data.get("decisions")
        if not isinstance(data.get("run_id"), str) or not isinstance(decisions, dict) or not decisions:
            raise _Problem(400, 'send {"run_id": ..., "decisions": {call_id: true | "reason to deny"}}')
        _start(lambda: session.approve(data["run_id"], decisions))
        return JSONResponse({"resumed": True})

    async def answer(request: Request) -> Response:
        data = await body_of(request)
        try:
            session_of(request).answer(str(data.get("id")), str(data.get("text", "")))
        except KeyError as exc:
            raise _Problem(404, str(exc.args[0])) from None
        return JSONResponse({"answered": True})

    async def upload(request: Request) -> Response:
        from starlette.datastructures import UploadFile

        session = session_of(request)
        form = await request.form()
        stored = []
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                try:
                    path = session.add_upload(value.filename or "upload", data)
                except ValueError as exc:
                    raise _Problem(413, str(exc)) from None
                stored.append({"name": path.name, "size": len(data)})
        if not stored:
            raise _Problem(400, "no file in the upload (send multipart/form-data with a file field)")
        return JSONResponse({"uploaded": stored})

    async def download(request: Request) -> Response:
        session = session_of(request)
        path = session.files.get(request.path_params["token"])
        if path is None or not path.is_file():
            raise _Problem(404, "no such file in this session (files are kept while the server runs)")
        # an attachment, never rendered by the browser as a page of this origin (an .html the code wrote)
        return FileResponse(path, filename=path.name, headers={"X-Content-Type-Options": "nosniff"})

    async def pygments_css(request: Request) -> Response:
        return PlainTextResponse(css, media_type="text/css")

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/api/chat/state", state),
        Route("/api/chat/events", events),
        Route("/api/chat/send", send_task, methods=["POST"]),
        Route("/api/chat/stop", stop, methods=["POST"]),
        Route("/api/chat/approve", approve, methods=["POST"]),
        Route("/api/chat/answer", answer, methods=["POST"]),
        Route("/api/chat/upload", upload, methods=["POST"]),
        Route("/files/{token}/{name}", download),
        Route("/static/highlight.css", pygments_css),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    browsing: list[BaseRoute] = []
    try:
        browsing = _run_browser_routes(_resolve_store(store, source))
    except Exception as exc:  # the chat works without the run browser; say why it is missing
        _log.warning("the run browser is off: %s: %s", type(exc).__name__, exc)
    routes += browsing
    page = page.replace("{{runs_nav}}", '<a href="runs" id="runs-link">Runs</a>' if browsing else "")

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Problem)
        return JSONResponse({"error": exc.text}, status_code=exc.status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        hub.close()

    app = Starlette(routes=routes, exception_handlers={_Problem: problem}, lifespan=lifespan)
    app.state.hub = hub
    app.add_middleware(_GuardMiddleware, token=token)
    return app


def _start(action: Any) -> None:
    try:
        action()
    except KeyError as exc:
        raise _Problem(409, str(exc.args[0])) from None
    except (RuntimeError, ValueError) as exc:
        raise _Problem(409, str(exc)) from None


class _GuardMiddleware(_Guard):
    """`_Guard` in the shape `Starlette.add_middleware` builds (app first, options by keyword)."""


class _Problem(Exception):
    """An API error the page shows: HTTP `status` and a sentence."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def launch(
    agent_factory: Any = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    token: str | None = None,
    store: Any = None,
    title: str = "codeloop",
    log_level: str = "warning",
    max_file_mb: float = 50,
) -> None:
    """Serve the UI until stopped (Ctrl-C). Any `host` but a loopback address needs `token`."""
    check_exposure(host, token)
    import uvicorn

    app = create_app(agent_factory, store=store, token=token, title=title, max_file_mb=max_file_mb)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"codeloop ui: serving on {url}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
