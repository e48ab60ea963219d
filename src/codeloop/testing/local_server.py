"""`LocalModelServer`: the prepared local model behind llama-cpp-python's OpenAI-compatible server, for tests.

    with LocalModelServer() as server:
        agent = CodeAgent([], model=server.model(temperature=0, seed=0))

The server runs on a free 127.0.0.1 port in its own venv (see `codeloop.testing.local_model`), is polled until
it answers, and is stopped on exit, also when the body raised. Its log goes to a file whose tail is quoted
when it fails to start.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .local_model import QWEN_CODER_1_5B, ModelSource, PreparedModel, find_prepared

__all__ = ["LocalModelServer", "LocalServerError", "ServerExchange", "free_port"]


@dataclass
class ServerExchange:
    """One chat completion as the server sent it: its own `usage` and the reply, read off the wire."""

    usage: dict[str, Any]
    message: dict[str, Any]
    seconds: float
    """From sending the request to having the whole response."""
    server_log: str = ""
    """What the server logged while answering (it answers one request at a time)."""

    @property
    def reused_prompt_tokens(self) -> int:
        """Prompt tokens llama.cpp took from its cache of the previous prompt instead of evaluating them."""
        hits = re.findall(r"(\d+) prefix-match hit", self.server_log)
        return int(hits[0]) if hits else 0


class LocalServerError(RuntimeError):
    """The local model server did not start or died."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _recording_client(record: list[ServerExchange], timeout: float, log_path: Path | None) -> Any:
    import httpx

    def log_size() -> int:
        return log_path.stat().st_size if log_path is not None and log_path.exists() else 0

    def on_request(request: httpx.Request) -> None:
        request.extensions["codeloop_sent"] = (time.monotonic(), log_size())

    def on_response(response: httpx.Response) -> None:
        if not response.request.url.path.endswith("/chat/completions") or response.status_code != 200:
            return
        response.read()
        body = response.json()
        sent, log_start = response.request.extensions.get("codeloop_sent", (time.monotonic(), 0))
        seconds = time.monotonic() - sent
        server_log = ""
        if log_path is not None:
            with log_path.open("rb") as f:
                f.seek(log_start)
                server_log = f.read().decode(errors="replace")
        choices = body.get("choices") or [{}]
        message = choices[0].get("message") or {}
        record.append(ServerExchange(body.get("usage") or {}, message, seconds, server_log))

    return httpx.Client(timeout=timeout, event_hooks={"request": [on_request], "response": [on_response]})


class LocalModelServer:
    """Start, wait for and stop `python -m llama_cpp.server` on the prepared local model.

    Args:
        chat_format: llama-cpp-python's `--chat_format`. `None` uses the GGUF's own chat template: tools are
            shown to the model but its calls come back as text. `"chatml-function-calling"` returns native
            `tool_calls` (only when the request sends `tool_choice`, and never when streaming).
        source: Which prepared model to serve.
        startup_timeout: Seconds to wait for the first answer (loading 1.1 GB takes a few seconds, longer
            on a busy machine).
    """

    def __init__(
        self,
        chat_format: str | None = None,
        source: ModelSource = QWEN_CODER_1_5B,
        startup_timeout: float = 300.0,
        prepared: PreparedModel | None = None,
    ) -> None:
        self.chat_format = chat_format
        self.prepared = prepared or find_prepared(source)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def api_base(self) -> str:
        """The OpenAI-compatible base URL, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def model(self, record: list[ServerExchange] | None = None, **kwargs: Any) -> Any:
        """An `OpenAIModel` on this server; `kwargs` go to it (e.g. `temperature=0, seed=0`).

        With `record`, every chat completion the server answers is appended to it as a `ServerExchange`, read
        from the HTTP response itself (not through codeloop), so tests can compare codeloop's accounting with
        the server's own. Recording covers the synchronous client (`run`), not `arun`.
        """
        from ..models.openai import OpenAIModel

        # One request at a time on a CPU: a retry after a client-side timeout would queue behind the request
        # still running, so the timeout is generous and retries are off.
        kwargs.setdefault("timeout", 900.0)
        kwargs.setdefault("max_retries", 0)
        if record is not None:
            client_kwargs = dict(kwargs.pop("client_kwargs", None) or {})
            client_kwargs["http_client"] = _recording_client(record, kwargs["timeout"], self.log_path)
            kwargs["client_kwargs"] = client_kwargs
        return OpenAIModel("local", api_base=self.api_base, api_key="not-needed", **kwargs)

    def start(self) -> LocalModelServer:
        """Start the server and return once it answers `GET /v1/models`."""
        if self.process is not None:
            return self
        self.port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(log.name)
        self.process = subprocess.Popen(
            self.prepared.serve_command(self.port, self.chat_format),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalServerError(
                    f"the llama.cpp server exited with status {self.process.returncode} before answering:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.api_base}/models", timeout=5) as response:
                    json.load(response)
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                time.sleep(0.5)
        raise LocalServerError(
            f"the llama.cpp server did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
