"""`ScriptedLLMServer`: a real HTTP server on 127.0.0.1 that answers LLM API calls from a script.

It speaks the wire protocols the official SDKs expect, so tests drive the real `openai` client (and the other
providers' SDKs) against it without touching the internet:

- OpenAI Chat Completions: `POST /v1/chat/completions` (JSON or SSE streaming, `tool_calls`, `usage`),
  `GET /v1/models`; the same under Azure's route shape `POST /openai/deployments/{deployment}/chat/completions`.
  With `n_ctx=`, llama.cpp's `GET /props` too (the context the server was started with).
- Anthropic Messages: `POST /v1/messages` (JSON or the SSE event sequence).
- Bedrock Converse: `POST /model/{modelId}/converse` and `/converse-stream` (AWS event stream).

The script is a list of replies (see `codeloop.testing.scripted`) or a function of the `ScriptRequest`; a
`Fault` in the script injects an error (429 with `Retry-After`, 5xx, a hang, a cut connection, malformed
JSON) in that slot. Every request body is recorded in `requests`, with path and headers in `exchanges`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ..models.base import ChatMessage, trim_at_stop
from . import _wire_openai as openai_wire
from ._wire_anthropic import AnthropicWire
from ._wire_bedrock import BedrockWire
from .faults import Fault
from .scripted import Reply, ScriptRequest, normalize_reply

__all__ = ["ScriptedLLMServer", "RecordedRequest", "Fault", "WireProtocol"]

Script = Sequence[Reply | Fault] | Callable[[ScriptRequest], Reply | Fault]


@dataclass
class RecordedRequest:
    """One HTTP request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: dict[str, Any] | None


class WireProtocol(Protocol):
    """How one provider's API turns a request body into a `ScriptRequest` and a reply into bytes."""

    def parse(self, body: dict[str, Any], params: dict[str, str]) -> ScriptRequest:
        """The script's view of the request."""
        ...

    def model_name(self, body: dict[str, Any], params: dict[str, str]) -> str:
        """The model (or deployment) the request names."""
        ...

    def is_streaming(self, body: dict[str, Any], params: dict[str, str]) -> bool:
        """Whether the client asked for a stream."""
        ...

    def response(self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]) -> bytes:
        """The complete JSON body of a non-streaming reply."""
        ...

    def stream(
        self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]
    ) -> tuple[str, list[bytes]]:
        """The content type and the frames of a streamed reply, in order."""
        ...

    def error(self, status: int, message: str, error_type: str) -> bytes:
        """The JSON body of an error answer, in the provider's error shape."""
        ...


class _OpenAIWire:
    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def parse(self, body: dict[str, Any], params: dict[str, str]) -> ScriptRequest:
        return openai_wire.chat_request(body)

    def model_name(self, body: dict[str, Any], params: dict[str, str]) -> str:
        return params.get("deployment") or str(body.get("model", ""))

    def is_streaming(self, body: dict[str, Any], params: dict[str, str]) -> bool:
        return bool(body.get("stream"))

    def response(self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]) -> bytes:
        return _dump(openai_wire.completion_body(msg, self.model_name(request.raw, params)))

    def stream(
        self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]
    ) -> tuple[str, list[bytes]]:
        include_usage = bool((request.raw.get("stream_options") or {}).get("include_usage"))
        chunks = openai_wire.completion_chunks(
            msg, self.model_name(request.raw, params), include_usage=include_usage, chunk_size=self.chunk_size
        )
        frames = [b"data: " + _dump(c) + b"\n\n" for c in chunks]
        frames.append(b"data: [DONE]\n\n")
        return "text/event-stream", frames

    def error(self, status: int, message: str, error_type: str) -> bytes:
        return _dump(openai_wire.error_body(message, error_type))


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read `server.exchanges` instead of a log."""

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")

    # -- writing helpers -------------------------------------------------------------------------------------
    def send_body(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_frames(self, content_type: str, frames: list[bytes], cut_after: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for i, frame in enumerate(frames):
            if cut_after is not None and i >= cut_after:
                # Drop the connection without the terminating chunk: the client sees a broken stream.
                self.close_connection = True
                self.wfile.flush()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@dataclass
class _Route:
    wire: WireProtocol
    params: dict[str, str] = field(default_factory=dict)


class ScriptedLLMServer:
    """A scripted LLM API server on a free local port, running in a daemon thread until `close()`.

    `script` is a list whose items answer successive requests (a reply as `normalize_reply` accepts it, or a
    `Fault`), or a function called with each `ScriptRequest` returning one. Use it as a context manager, or
    call `close()`. `base_url` is the OpenAI-style root (`http://127.0.0.1:PORT/v1`); `url` the bare root.
    """

    def __init__(
        self,
        script: Script,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_size: int = 5,
        model_ids: Sequence[str] = ("scripted",),
        reject_stop_models: Sequence[str] = (),
        honor_stop: bool = True,
        n_ctx: int | None = None,
    ) -> None:
        """`chunk_size` is how many characters go in each streamed text chunk. Requests naming a model that
        starts with one of `reject_stop_models` and sending `stop` get HTTP 400, as OpenAI's reasoning models
        answer. With `honor_stop`, reply text is cut at the first stop sequence, as real servers do. With
        `n_ctx`, `GET /props` reports it as llama.cpp's server does (`default_generation_settings.n_ctx`);
        without, `/props` is 404, as from llama-cpp-python's server."""
        self.script = script
        self.chunk_size = chunk_size
        self.model_ids = list(model_ids)
        self.reject_stop_models = tuple(reject_stop_models)
        self.honor_stop = honor_stop
        self.n_ctx = n_ctx
        self.requests: list[dict[str, Any]] = []
        self.exchanges: list[RecordedRequest] = []
        self._calls = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wires: dict[str, WireProtocol] = {
            "openai": _OpenAIWire(chunk_size),
            "anthropic": AnthropicWire(chunk_size),
            "bedrock": BedrockWire(chunk_size),
        }
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.owner = self
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = bound_host if isinstance(bound_host, str) else bound_host.decode()
        self.port = int(bound_port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="scripted-llm-server",
            daemon=True,
        )
        self._thread.start()

    # -- public surface ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """`http://HOST:PORT`, the root (Anthropic's and Azure's SDKs take this)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/v1`, what OpenAI-compatible clients take as their base URL."""
        return f"{self.url}/v1"

    @property
    def call_count(self) -> int:
        """How many model calls reached the script (faults included)."""
        return self._calls

    def close(self) -> None:
        """Stop serving and release the port; hanging responses are released too."""
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_wire(self, name: str, wire: WireProtocol) -> None:
        """Add (or replace) a wire protocol; routes name protocols by `name`."""
        self._wires[name] = wire

    # -- request handling --------------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> _Route | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method != "POST":
            return None
        if parts in (["v1", "chat", "completions"], ["chat", "completions"]):
            return _Route(self._wires["openai"])
        if (
            len(parts) == 5
            and parts[0] == "openai"
            and parts[1] == "deployments"
            and parts[3:]
            == [
                "chat",
                "completions",
            ]
        ):
            return _Route(self._wires["openai"], {"deployment": parts[2]})
        if parts == ["v1", "messages"] and "anthropic" in self._wires:
            return _Route(self._wires["anthropic"])
        if len(parts) == 3 and parts[0] == "model" and parts[2] in ("converse", "converse-stream"):
            if "bedrock" in self._wires:
                return _Route(self._wires["bedrock"], {"model": parts[1], "action": parts[2]})
        return None

    def _handle(self, handler: _Handler, method: str) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body: dict[str, Any] | None = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                handler.send_body(400, _dump({"error": {"message": f"request body is not JSON: {exc}"}}))
                return
        with self._lock:
            self.exchanges.append(RecordedRequest(method, split.path, query, headers, body))
            if body is not None:
                self.requests.append(body)

        if method == "GET" and split.path.rstrip("/") in ("/v1/models", "/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "codeloop"} for m in self.model_ids
            ]
            handler.send_body(200, _dump({"object": "list", "data": data}))
            return
        if method == "GET" and split.path.rstrip("/") == "/props" and self.n_ctx is not None:
            settings = {"n_ctx": self.n_ctx, "temperature": 0.8}
            props = {
                "default_generation_settings": settings,
                "total_slots": 1,
                "model_path": self.model_ids[0],
            }
            handler.send_body(200, _dump(props))
            return
        route = self._route(method, split.path)
        if route is None or body is None:
            handler.send_body(404, _dump({"error": {"message": f"no route for {method} {split.path}"}}))
            return
        if "deployment" in route.params and "api-version" not in query:
            # Azure refuses deployment routes without an api-version query parameter.
            handler.send_body(
                404, route.wire.error(404, "Resource not found: missing api-version", "invalid_request_error")
            )
            return
        self._answer(handler, route, body)

    def _answer(self, handler: _Handler, route: _Route, body: dict[str, Any]) -> None:
        wire, params = route.wire, route.params
        request = wire.parse(body, params)
        model = wire.model_name(body, params)
        if request.stop and self.reject_stop_models and model.startswith(self.reject_stop_models):
            message = f"Unsupported parameter: 'stop' is not supported with this model ({model})."
            handler.send_body(400, wire.error(400, message, "invalid_request_error"))
            return
        if wire is self._wires["openai"] and "tool_choice" in body and not body.get("tools"):
            # OpenAI's own answer to a tool_choice without tools.
            message = (
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
            )
            handler.send_body(400, wire.error(400, message, "invalid_request_error"))
            return
        with self._lock:
            index = self._calls
            self._calls += 1
        request.index = index
        try:
            item = self._script_item(request)
        except Exception as exc:  # a broken script is reported to the client, in the provider's error shape
            handler.send_body(
                500, wire.error(500, f"scripted server: {type(exc).__name__}: {exc}", "script_error")
            )
            return
        if isinstance(item, Fault):
            self._inject(handler, wire, item, request, params)
            return
        msg, params = self._shape(item, request, params)
        if wire.is_streaming(body, params):
            content_type, frames = wire.stream(msg, request, params)
            handler.send_frames(content_type, frames)
        else:
            handler.send_body(200, wire.response(msg, request, params))

    def _script_item(self, request: ScriptRequest) -> ChatMessage | Fault:
        if callable(self.script):
            item = self.script(request)
        else:
            if request.index >= len(self.script):
                raise IndexError(
                    f"the script has {len(self.script)} replies; request {request.index + 1} asked for another"
                )
            item = self.script[request.index]
        return item if isinstance(item, Fault) else normalize_reply(item, request.index)

    def _shape(
        self, msg: ChatMessage, request: ScriptRequest, params: dict[str, str]
    ) -> tuple[ChatMessage, dict[str, str]]:
        # Cut the text at a stop sequence as a real server would; tell the wire which one ended it.
        if self.honor_stop and request.stop and isinstance(msg.content, str):
            trimmed = trim_at_stop(msg.content, request.stop)
            if trimmed != msg.content:
                hit = next(s for s in request.stop if s and msg.content.startswith(s, len(trimmed)))
                shaped = ChatMessage(
                    role="assistant",
                    content=trimmed,
                    tool_calls=msg.tool_calls,
                    token_usage=msg.token_usage,
                    reasoning=msg.reasoning,
                )
                return shaped, {**params, "stop_sequence": hit}
        return msg, params

    def _inject(
        self,
        handler: _Handler,
        wire: WireProtocol,
        fault: Fault,
        request: ScriptRequest,
        params: dict[str, str],
    ) -> None:
        if fault.kind == "status":
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(max(0, int(-(-fault.retry_after // 1))))
                headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            handler.send_body(
                fault.status, wire.error(fault.status, fault.message, fault.error_type), headers=headers
            )
        elif fault.kind == "hang":
            self._closing.wait(fault.seconds)
            handler.close_connection = True
        elif fault.kind == "malformed_json":
            if wire.is_streaming(request.raw, params):
                handler.send_frames("text/event-stream", [b'data: {"id": "broken", "choices": [\n\n'])
            else:
                handler.send_body(200, b'{"id": "broken", "choices": [{"index": 0, "message": {')
        elif fault.kind == "cut":
            reply = normalize_reply(fault.reply if fault.reply is not None else "", request.index)
            msg, params = self._shape(reply, request, params)
            if wire.is_streaming(request.raw, params):
                content_type, frames = wire.stream(msg, request, params)
                handler.send_frames(content_type, frames, cut_after=fault.after_chunks)
            else:
                data = wire.response(msg, request, params)
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data[: len(data) // 2])
                handler.wfile.flush()
                handler.close_connection = True
