"""The run browser of `codeloop ui`: pages under `/runs` and JSON under `/api/runs`, over a run store.

`run_browser_routes(store)` gives the Starlette routes (the `codeloop ui` app mounts them next to the chat);
`create_run_browser_app(store)` is the browser alone, as an app of its own. The pages are plain HTML, CSS and
JavaScript shipped with codeloop (`static/runs.*`, no asset from a CDN), and read everything from the JSON API:

- `GET /api/runs?state=&session=&model=&since=&until=&children=1&offset=&limit=` — a page of runs, newest first;
  `since`/`until` take seconds since the epoch or ISO 8601 (`until` excluded); managed agents' runs are left
  out unless `children=1` (they appear inside their manager's timeline).
- `GET /api/runs/{run_id}` — the run's timeline (a unique id prefix will do): steps, effects with durations,
  tokens and cost per step, managed agents' runs nested, notable events, the effect journal.
- `GET /api/runs/compare?a=RUN&b=RUN` — two runs side by side, steps aligned by step number.

A bad parameter is a 400 and a missing run a 404, each with `{"error": "..."}` saying what was wrong.
Starlette is needed (`pip install "codeloop[ui]"`); it is imported only when this module is.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any

from .._extras import install_hint, is_installed

if not is_installed("starlette"):
    raise ImportError(f"the run browser needs Starlette: {install_hint('ui')}")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..store.base import RunNotFound, Store, StoreError
from .runs_data import RunQuery, compare_runs, run_timeline

__all__ = ["run_browser_routes", "create_run_browser_app", "TOKEN_COOKIE"]

TOKEN_COOKIE = "codeloop_token"
"""The cookie holding the access token once a page was opened with `?token=...`."""

_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")
# Files the browser may fetch from static/ (only the run browser's own: the folder is shared with the chat).
_ASSETS = {"runs.js": "text/javascript", "runs.css": "text/css"}


def _static(name: str) -> str:
    return resources.files("codeloop.ui").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def run_browser_routes(store: Store) -> list[BaseRoute]:
    """The run browser's routes over `store`: the pages `/runs`, `/runs/{run_id}`, `/runs/compare` and their
    assets under `/runs/assets/`, and the JSON API under `/api/runs` (see the module's docstring)."""
    if not isinstance(store, Store):
        raise TypeError(
            f"run_browser_routes needs a run store (codeloop.store.open_store(...)), got {type(store).__name__}"
        )

    def page(request: Request) -> Response:
        # One page for the three views; runs.js picks the view from the path. The app's root path lets the
        # routes be mounted under a prefix.
        root = request.scope.get("root_path", "")
        html = _static("runs.html").replace("{{ROOT}}", _attribute(root))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            return JSONResponse({"error": f"no asset {name!r}"}, status_code=404)
        return Response(_static(name), media_type=_ASSETS[name])

    def list_runs(request: Request) -> Response:
        try:
            query = RunQuery.from_params(request.query_params)
        except ValueError as exc:
            return _error(400, str(exc))
        return _read(lambda: query.fetch(store))

    def timeline(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return _read(lambda: run_timeline(store, run_id))

    def compare(request: Request) -> Response:
        first = request.query_params.get("a", "").strip()
        second = request.query_params.get("b", "").strip()
        if not first or not second:
            return _error(400, "compare needs two runs: /api/runs/compare?a=RUN_ID&b=RUN_ID")
        return _read(lambda: compare_runs(store, first, second))

    # Plain (not async) endpoints: Starlette runs them in its thread pool, so a slow store read never blocks
    # the event loop that also serves the chat's live updates.
    return [
        Route("/runs", page, methods=["GET"]),
        Route("/runs/compare", page, methods=["GET"]),
        Route("/runs/assets/{name}", asset, methods=["GET"]),
        Route("/runs/{run_id}", page, methods=["GET"]),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/compare", compare, methods=["GET"]),
        Route("/api/runs/{run_id}", timeline, methods=["GET"]),
    ]


def _read(build: Callable[[], dict[str, Any]]) -> Response:
    try:
        return JSONResponse(build())
    except RunNotFound as exc:
        return _error(404, str(exc))
    except StoreError as exc:
        return _error(503, str(exc))


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def create_run_browser_app(store: Store, token: str | None = None) -> Starlette:
    """The run browser alone, as an ASGI app (serve it with uvicorn). `/` leads to `/runs`.

    With `token`, every request must carry it: `Authorization: Bearer TOKEN`, or `?token=TOKEN` once (which
    sets a cookie for the pages that follow); others get a 401. Without one, bind it to 127.0.0.1 only.
    """
    if token is not None and not _TOKEN_CHARACTERS.fullmatch(token):
        raise ValueError(
            "token must be a non-empty string of letters, digits and -._~ (it travels in URLs and a cookie), "
            "such as secrets.token_urlsafe(); pass None for no token"
        )

    def home(request: Request) -> Response:
        return Response(status_code=307, headers={"Location": f"{request.scope.get('root_path', '')}/runs"})

    app = Starlette(routes=[Route("/", home, methods=["GET"]), *run_browser_routes(store)])
    if token is not None:
        app.add_middleware(_TokenRequired, token=token)
    return app


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _TokenRequired:
    """ASGI middleware: a request without the token gets a 401; `?token=` on a page sets the cookie."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]], token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        offered = [
            header[7:].strip() if header.lower().startswith("bearer ") else "",
            request.cookies.get(TOKEN_COOKIE, ""),
            request.query_params.get("token", ""),
        ]
        if not any(hmac.compare_digest(o.encode(), self.token) for o in offered if o):
            response = JSONResponse(
                {"error": "this server needs its access token: open the link it printed (…?token=...)"},
                status_code=401,
            )
            await response(scope, receive, send)
            return
        if hmac.compare_digest(request.query_params.get("token", "").encode(), self.token):

            async def with_cookie(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{TOKEN_COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict"
                    message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
                await send(message)

            await self.app(scope, receive, with_cookie)
            return
        await self.app(scope, receive, send)
