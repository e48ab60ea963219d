"""The chat page's server side: one agent per browser session, its runs streamed as server-sent events.

A browser session is a random cookie. Its agent comes from the app's `AgentSource`: a factory gives every session
a fresh agent, so sessions run side by side; a single agent instance is shared, and then runs take turns on it
(each session still has its own conversation, which the run store keeps under the session's name). Runs go on in
worker threads, not in the request: a browser that disconnects does not stop its run, which the run store
records; reopening the page replays the session's events from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import events as ev
from .chat_events import describe_event
from .chat_files import ProducedFiles

__all__ = ["AgentSource", "ChatHub", "ChatSession", "SESSION_COOKIE", "agent_source"]

SESSION_COOKIE = "codeloop_ui_session"
_MAX_UPLOAD_BYTES = 50 * 2**20
DEFAULT_MAX_FILE_MB = 50
"""The largest file the code wrote that the chat copies out and offers for download (MiB)."""


def _is_agent(candidate: Any) -> bool:
    return hasattr(candidate, "run") and hasattr(candidate, "tools") and hasattr(candidate, "memory")


class AgentSource:
    """Where sessions get their agent: `factory()` per session, or one shared `agent` (runs take turns).

    A shared agent cannot be copied safely (it holds an executor process, locks and connections), so it is
    not: sessions take turns on it, one run at a time, and each session's conversation is loaded from the run
    store under its own name, so sessions still never see each other's runs. Pass a factory (a function
    returning a new agent) to let sessions run at the same time.
    """

    def __init__(self, agent_or_factory: Any) -> None:
        self.shared: Any = None
        self.factory: Callable[[], Any] | None = None
        if _is_agent(agent_or_factory):
            self.shared = agent_or_factory
        elif callable(agent_or_factory):
            self.factory = agent_or_factory
        else:
            raise TypeError(
                f"the UI serves an agent or a function returning a new agent, not {agent_or_factory!r}"
            )
        self._turn = threading.Lock()

    def new_agent(self) -> Any:
        """The agent for a new browser session; raises with a message the page can show."""
        if self.shared is not None:
            return self.shared
        assert self.factory is not None
        agent = self.factory()
        if not _is_agent(agent):
            name = getattr(self.factory, "__qualname__", repr(self.factory))
            raise TypeError(f"the agent factory {name} returned {agent!r}, which is not a codeloop agent")
        return agent

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Held while a run goes on: only a shared agent makes sessions wait for each other."""
        if self.shared is None:
            yield
            return
        with self._turn:
            yield


def agent_source(reference: str) -> AgentSource:
    """An `AgentSource` from the command line: a saved agent folder, or `file.py:name` / `module:name` naming
    an agent or a function that returns one. A folder is loaded afresh for each session."""
    from ..tools.mcp_server import _load_agent_reference

    if Path(reference).is_dir():
        from ..agent_io import load_agent

        return AgentSource(lambda: load_agent(reference))
    return AgentSource(_load_agent_reference(reference, trust_remote_code=False))


@dataclass
class _Question:
    text: str
    answered: threading.Event = field(default_factory=threading.Event)
    answer: str | None = None


class ChatSession:
    """One browser session: its agent, its event log (what the page shows), pending approvals, uploads."""

    def __init__(
        self,
        secret: str,
        source: AgentSource,
        folder: Path,
        download_dirs: Sequence[Path] = (),
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
    ) -> None:
        self.name = "ui-" + hashlib.sha256(secret.encode()).hexdigest()[:16]
        """The session's name in the run store (not the cookie, which must stay secret)."""
        self.source = source
        self.folder = folder
        self.agent: Any = None
        self.agent_error: str | None = None
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self._pending_loaded = False
        self.uploads: list[Path] = []
        self.files: dict[str, Path] = {}
        self.download_dirs = [Path(d).resolve() for d in download_dirs]
        self._run: threading.Thread | None = None
        self._questions: dict[str, _Question] = {}
        self._ran_before = False
        self.produced = ProducedFiles(folder / "produced", int(max_file_mb * 2**20), self._register_file)
        """The files the agent's code writes, offered after each step."""

    # --- the agent ---------------------------------------------------------------------------------------

    def ensure_agent(self) -> None:
        """Build the session's agent if it has none; a failure is kept as `agent_error` (tried again later)."""
        with self._lock:
            if self.agent is not None:
                return
            try:
                self.agent = self.source.new_agent()
                self.agent_error = None
            except Exception as exc:  # the page shows why; the server keeps serving other sessions
                self.agent_error = f"the agent could not be created: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Release the session's own agent (its executor); a shared agent stays its owner's to close."""
        agent, self.agent = self.agent, None
        if agent is not None and self.source.shared is None:
            agent.close()

    @property
    def busy(self) -> bool:
        """Whether a run (or a resumption) of this session is going on."""
        return self._run is not None and self._run.is_alive()

    # --- the event log and its readers ---------------------------------------------------------------------

    def publish(self, item: dict[str, Any]) -> None:
        """Append `item` to the log and wake every page listening (called from any thread)."""
        with self._lock:
            item["seq"] = len(self._log) + 1
            self._log.append(item)
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that page's event loop is gone
                loop.call_soon_threadsafe(waiter.set)

    def since(self, seq: int, waiter: asyncio.Event) -> list[dict[str, Any]]:
        """The items after `seq`; when there are none, `waiter` is set once one arrives."""
        with self._lock:
            if len(self._log) > seq:
                return self._log[seq:]
            self._waiters.append((asyncio.get_running_loop(), waiter))
            return []

    def forget(self, waiter: asyncio.Event) -> None:
        """Drop a waiter whose page went away."""
        with self._lock:
            self._waiters = [(loop, w) for loop, w in self._waiters if w is not waiter]

    # --- runs --------------------------------------------------------------------------------------------

    def start(self, work: Callable[[Any], Any]) -> None:
        """Run `work(agent)` in a worker thread, streaming its events; refuses while another is going on."""
        if self.agent is None:
            raise RuntimeError(self.agent_error or "the session has no agent yet: reload the page")
        if self.busy:
            raise RuntimeError("a run is going on in this session: wait for it, or stop it first")
        self._run = threading.Thread(target=self._perform, args=(work,), name="codeloop-ui-run", daemon=True)
        self._run.start()

    def _perform(self, work: Callable[[Any], Any]) -> None:
        agent = self.agent
        with self.source.turn():
            detach = self._attach(agent)
            try:
                work(agent)
            except Exception as exc:  # an error the run itself did not report (a bad id, a store failure)
                self.publish({"type": "failure", "text": f"{type(exc).__name__}: {exc}", "depth": 0})
            finally:
                detach()
                self._release_questions("the run ended")
                self.publish({"type": "idle", "depth": 0})

    def _attach(self, agent: Any) -> Callable[[], None]:
        """Listen to the agent and its managed agents (nested by depth); point `user_input` at the page."""
        attached: list[tuple[Any, Callable[[ev.Event], None]]] = []
        askers: list[tuple[Any, Any]] = []

        def visit(member: Any, depth: int) -> None:
            def listener(event: ev.Event, member: Any = member, depth: int = depth) -> None:
                self._on_event(member, event, depth)

            member.listeners.append(listener)
            attached.append((member, listener))
            for tool in member.tools.values():
                if getattr(tool, "name", None) == "user_input" and hasattr(tool, "ask"):
                    askers.append((tool, tool.ask))
                    tool.ask = self.ask
            for managed in (getattr(member, "managed_agents", None) or {}).values():
                visit(managed, depth + 1)

        visit(agent, 0)

        def detach() -> None:
            for member, listener in attached:
                with contextlib.suppress(ValueError):
                    member.listeners.remove(listener)
            for tool, previous in askers:
                tool.ask = previous

        return detach

    def _on_event(self, agent: Any, event: ev.Event, depth: int) -> None:
        if isinstance(event, ev.RunStarted):
            self._files_step(lambda: self.produced.run_started(agent), depth)
        cost = getattr(agent, "_cost", lambda usage: None)
        item = describe_event(event, depth, cost=cost, keep_file=self.keep_file)
        if isinstance(event, ev.StepFinished):
            if item is not None:
                self.publish(item)
            step = event.step.step_number
            self._files_step(lambda: self._publish_files(agent, step, depth), depth)
            return
        if item is None:
            return
        if item["type"] == "run_finished" and depth == 0:
            with self._lock:
                self.pending.pop(item["run_id"], None)
                if item["pending"]:
                    self.pending[item["run_id"]] = item["pending"]
        self.publish(item)

    def run_task(self, task: str) -> None:
        """Start the agent on `task`, continuing this session's conversation."""

        def work(agent: Any) -> None:
            note = self._deliver_uploads(agent)  # in the run's turn: a shared agent's executor is free then
            recorded = agent.store is not None
            if recorded:  # the store holds the conversation under the session's name: shared agents too
                agent.run(task + note, session=self.name, return_full_result=True)
            else:
                reset = self.source.shared is not None or not self._ran_before
                agent.run(task + note, reset=reset, return_full_result=True)
            self._ran_before = True

        self.start(work)

    def approve(self, run_id: str, decisions: dict[str, Any]) -> None:
        """Resume the paused run `run_id` with `decisions` ({call_id: True | "reason to deny"})."""
        with self._lock:
            if run_id not in self.pending:
                raise KeyError(f"run {run_id} of this session is not awaiting approval")
            if self.busy:
                raise RuntimeError("a run is going on in this session: wait for it, or stop it first")
            calls = self.pending.pop(run_id)  # decided: its cards go; a new pause brings them back

        def work(agent: Any) -> None:
            agent.resume(run_id, approvals=decisions, return_full_result=True)

        try:
            self.start(work)
        except RuntimeError:
            with self._lock:
                self.pending[run_id] = calls
            raise
        self.publish({"type": "notice", "depth": 0, "text": f"decisions sent for run {run_id}: {decisions}"})

    def interrupt(self) -> bool:
        """Ask the running agent to stop before its next step (a question waiting is answered with a stop)."""
        if not self.busy or self.agent is None:
            return False
        self.agent.interrupt()
        for managed in (getattr(self.agent, "managed_agents", None) or {}).values():
            managed.interrupt()
        self._release_questions("the user stopped the run")
        self.publish({"type": "notice", "depth": 0, "text": "stopping: the run ends before its next step"})
        return True

    # --- user_input, answered in the page ----------------------------------------------------------------

    def ask(self, prompt: str) -> str:
        """`UserInputTool`'s `ask`: show the question in the page and wait for the answer."""
        question_id = secrets.token_hex(6)
        question = _Question(prompt)
        with self._lock:
            self._questions[question_id] = question
        self.publish({"type": "question", "id": question_id, "text": prompt, "depth": 0})
        question.answered.wait()
        with self._lock:
            self._questions.pop(question_id, None)
        if question.answer is None:
            raise RuntimeError("No answer: the user stopped the run. Do not ask again.")
        self.publish({"type": "answer", "id": question_id, "text": question.answer, "depth": 0})
        return question.answer

    def answer(self, question_id: str, text: str) -> None:
        """The user's answer to the question `question_id`."""
        with self._lock:
            question = self._questions.get(question_id)
        if question is None:
            raise KeyError(f"no question {question_id!r} is waiting for an answer")
        question.answer = text
        question.answered.set()

    def _release_questions(self, why: str) -> None:
        with self._lock:
            waiting = list(self._questions.values())
        for question in waiting:
            question.answered.set()

    # --- files -------------------------------------------------------------------------------------------

    def _publish_files(self, agent: Any, step: int | None, depth: int) -> None:
        item = self.produced.step_finished(agent, step)
        if item is not None:
            self.publish({**item, "depth": depth})

    def _files_step(self, action: Callable[[], None], depth: int) -> None:
        # Between steps, in the run's thread (the executor is idle then). Listing files is a courtesy: its
        # failure (a worker that died) is told in the page and never ends the run.
        try:
            action()
        except Exception as exc:
            self.publish({"type": "notice", "depth": depth, "text": f"files not listed: {exc}"})

    def _register_file(self, token: str, path: Path) -> None:
        with self._lock:
            self.files[token] = path

    def keep_file(self, path: Path) -> str | None:
        """Make `path` downloadable by this session: its URL, or None outside the download directories.

        The answer is the model's text: a path in it must not turn any file of the server into a download
        (a prompt-injected model could name a key file), so only files under `download_dirs` are offered.
        """
        resolved = path.resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.download_dirs):
            return None
        token = secrets.token_urlsafe(12)
        with self._lock:
            self.files[token] = resolved
        return f"files/{token}/{path.name}"

    def add_upload(self, filename: str, data: bytes) -> Path:
        """Keep an uploaded file for the next task (it goes into the agent's working directory then)."""
        name = Path(filename).name.strip() or "upload"
        if name in (".", ".."):
            name = "upload"
        if len(data) > _MAX_UPLOAD_BYTES:
            raise ValueError(f"{name} is {len(data):,} bytes; the limit is {_MAX_UPLOAD_BYTES:,}")
        target = self.folder / "uploads" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        with self._lock:
            if target not in self.uploads:
                self.uploads.append(target)
        return target

    def _deliver_uploads(self, agent: Any) -> str:
        """Put the uploaded files where the agent's code runs; the note telling the model where they are."""
        with self._lock:
            uploads, self.uploads = self.uploads, []
        if not uploads:
            return ""
        names = ", ".join(p.name for p in uploads)
        executor = getattr(agent, "executor", None) if hasattr(agent, "executor_spec") else None
        if executor is not None:
            try:
                _write_into_executor(executor, {p.name: p.read_bytes() for p in uploads})
                return f"\n\n(The user uploaded these files into your working directory: {names}.)"
            except Exception as exc:  # e.g. an executor that forbids open(): the paths on the host instead
                self.publish(
                    {"type": "notice", "depth": 0, "text": f"uploads not copied into the executor: {exc}"}
                )
        paths = ", ".join(str(p) for p in uploads)
        return f"\n\n(The user uploaded these files: {paths}.)"


def _write_into_executor(executor: Any, files: dict[str, bytes]) -> None:
    # The executor's own code path: the files land wherever its code runs (a sandbox's private working
    # directory, a container, a remote machine), with no host path shared.
    executor.send_variables({"_codeloop_uploads": files})
    result = executor.run(
        "for _name, _data in _codeloop_uploads.items():\n"
        "    with open(_name, 'wb') as _file:\n"
        "        _file.write(_data)\n"
        "del _codeloop_uploads\n"
    )
    logs = getattr(result, "logs", "") or ""
    if "Error" in logs and "Traceback" in logs:
        raise RuntimeError(logs.strip().splitlines()[-1])


class ChatHub:
    """Every browser session of one app, keyed by their cookie."""

    def __init__(
        self,
        source: AgentSource | None,
        folder: Path | None = None,
        download_dirs: Sequence[Path] = (),
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
    ) -> None:
        self.source = source
        self.download_dirs = list(download_dirs)
        self.max_file_mb = max_file_mb
        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(prefix="codeloop-ui-")
        self.folder = folder or Path(self._tmp.name)  # type: ignore[union-attr]
        self._sessions: dict[str, ChatSession] = {}
        self._lock = threading.Lock()

    def session(self, secret: str | None, *, create: bool = False) -> ChatSession | None:
        """The session whose cookie is `secret` (a new one when `create`), None when unknown."""
        if self.source is None or not secret:
            return None
        with self._lock:
            found = self._sessions.get(secret)
            if found is None and create:
                folder = self.folder / hashlib.sha256(secret.encode()).hexdigest()[:16]
                found = self._sessions[secret] = ChatSession(
                    secret, self.source, folder, self.download_dirs, self.max_file_mb
                )
            return found

    def sessions(self) -> list[ChatSession]:
        """Every session so far."""
        with self._lock:
            return list(self._sessions.values())

    def close(self) -> None:
        """Close every session's own agent and remove the uploads (when the app shuts down)."""
        for session in self.sessions():
            with contextlib.suppress(Exception):  # one agent failing to close must not keep the others open
                session.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def state(self, session: ChatSession) -> dict[str, Any]:
        """What the page needs on load: the agent (or its error), the session's recorded runs, pending calls."""
        agent = session.agent
        runs: list[dict[str, Any]] = []
        store = getattr(agent, "store", None) if agent is not None else None
        if store is not None:
            from ..durable import pending_approvals

            for record in store.list_runs(session=session.name, limit=50):
                if record.parent_run_id is None:
                    runs.append(
                        {
                            "run_id": record.run_id,
                            "task": record.task,
                            "state": record.state,
                            "at": record.started_at,
                        }
                    )
                if record.state == "awaiting_approval" and not session._pending_loaded:
                    calls = pending_approvals(store.journal(record.run_id))
                    if calls:
                        session.pending.setdefault(record.run_id, calls)
            session._pending_loaded = True
        return {
            "agent": None if agent is None else (agent.name or type(agent).__name__),
            "error": session.agent_error,
            "shared": self.source is not None and self.source.shared is not None,
            "recorded": store is not None,
            "busy": session.busy,
            "runs": runs,
            "pending": [{"run_id": r, "calls": c} for r, c in session.pending.items()],
        }


def sse_item(item: dict[str, Any]) -> dict[str, Any]:
    """One log item as an sse-starlette event (its `seq` is the id, so a reconnect resumes after it)."""
    return {"id": str(item["seq"]), "event": "agent", "data": json.dumps(item, ensure_ascii=False)}
