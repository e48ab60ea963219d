"""`codeloop ui`: a local web app to chat with an agent, approve its tool calls and browse recorded runs.

    from codeloop.ui import launch
    launch(make_agent)               # a function returning a new agent: one agent per browser session
    launch(make_agent, host="0.0.0.0", token="...")   # any other address than 127.0.0.1 needs a token

`create_app(...)` gives the ASGI app itself (Starlette), to mount or serve otherwise. `GradioUI(agent).launch()`
keeps smolagents code working: it serves this app for that agent. The app needs the `ui` extra
(`pip install 'codeloop[ui]'`: Starlette, uvicorn, sse-starlette, python-multipart); nothing here is imported
by `import codeloop`. The run browser alone is `codeloop.ui.runs` (its routes are mounted by `create_app`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["launch", "create_app", "GradioUI"]


def _server() -> Any:
    try:
        import python_multipart  # noqa: F401  (uploads)
        import sse_starlette  # noqa: F401
        import starlette  # noqa: F401

        from . import server
    except ImportError as exc:
        raise ImportError(
            f"the web UI needs {exc.name or 'its dependencies'}: pip install 'codeloop[ui]'"
        ) from exc
    return server


def create_app(agent_factory: Any = None, **options: Any) -> Starlette:
    """The UI as an ASGI app; see `codeloop.ui.server.create_app` for the options (store, token, title)."""
    app: Starlette = _server().create_app(agent_factory, **options)
    return app


def launch(agent_factory: Any = None, **options: Any) -> None:
    """Serve the UI until stopped; see `codeloop.ui.server.launch` (host, port, token, store, title)."""
    _server().launch(agent_factory, **options)


class GradioUI:
    """smolagents' `GradioUI(agent).launch()`, served by codeloop's own UI (no Gradio needed).

    A single agent instance is shared by the browser sessions: their runs take turns on it, and each session
    keeps its own conversation (in the run store, under the session's name). Pass a function returning a new
    agent instead of the agent to give each session its own, running side by side.
    """

    def __init__(
        self, agent: Any, file_upload_folder: str | None = None, reset_agent_memory: bool = False
    ) -> None:
        self.agent = agent
        # Accepted for compatibility: uploads go into the agent's executor, and each session has its own memory.
        self.file_upload_folder = file_upload_folder
        self.reset_agent_memory = reset_agent_memory

    def create_app(self, **options: Any) -> Starlette:
        """The ASGI app serving this agent."""
        return create_app(self.agent, **options)

    def launch(
        self,
        share: bool = False,
        *,
        server_name: str = "127.0.0.1",
        server_port: int = 7860,
        token: str | None = None,
        **options: Any,
    ) -> None:
        """Serve until stopped. `share=True` (a public Gradio tunnel) is not offered: bind `server_name` to a
        reachable address with a `token` instead."""
        if share:
            raise ValueError(
                "share=True (a public tunnel) is not supported: serve on your network with "
                "launch(server_name='0.0.0.0', token='...') instead"
            )
        options.pop("debug", None)
        launch(self.agent, host=server_name, port=server_port, token=token, **options)
