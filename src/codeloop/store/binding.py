"""How an agent holds its store: `store=` resolved once, the default opened on first run, sessions loaded."""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

from .base import Store, StoreError

if TYPE_CHECKING:
    from ..memory import MemoryStep
    from .recorder import StoreRecorder

__all__ = ["AgentStore", "DEFAULT"]

DEFAULT = "default"
_shared: dict[tuple[int, str], Store] = {}
_shared_lock = threading.Lock()


def _open_shared(spec: str | os.PathLike[str]) -> Store | None:
    # One connection per store and process, whatever the number of agents; a forked child opens its own.
    from .opening import default_store_path, open_store

    text = os.fspath(spec)
    where = str(default_store_path()) if text == DEFAULT else text
    key = (os.getpid(), where)
    with _shared_lock:
        if key not in _shared:
            store = open_store(where)
            assert store is not None
            _shared[key] = store
        return _shared[key]


class AgentStore:
    """An agent's `store=`: None (off), "default" (opened on first run), a path or URL, or a Store object.

    An explicit spec is opened at once, so a corrupt or foreign file is refused when the agent is built; the
    default store is opened on the first run, and if it cannot be, the agent warns and runs unrecorded.
    """

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self._store: Store | None = None
        self._failed = False
        self.recorder: StoreRecorder | None = None
        if spec is None or (isinstance(spec, str) and spec == DEFAULT):
            return
        if isinstance(spec, str | os.PathLike):
            self._store = _open_shared(spec)
        else:
            from .opening import open_store

            self._store = open_store(spec)

    @property
    def store(self) -> Store | None:
        """The open store, or None when recording is off (or the default store could not be opened)."""
        if self._store is None and self.spec == DEFAULT and not self._failed:
            try:
                self._store = _open_shared(DEFAULT)
            except (StoreError, OSError) as exc:
                self._failed = True
                warnings.warn(
                    f"runs are not recorded: {exc} (set CODELOOP_HOME, pass store=..., or store=None)",
                    RuntimeWarning,
                    stacklevel=4,
                )
        return self._store

    def begin(self, agent: Any, session: str | None) -> StoreRecorder | None:
        """The recorder for the run about to start (None when not recording)."""
        if session is not None and (not isinstance(session, str) or not session.strip()):
            raise ValueError(f"session={session!r}: give a non-empty name, e.g. session='user-42'")
        store = self.store
        if store is None:
            if session is not None:
                raise ValueError(
                    f"session={session!r} needs a run store to keep the conversation in; "
                    "this agent has store=None"
                )
            return None
        if self.recorder is None or self.recorder.store is not store:
            from .recorder import StoreRecorder

            self.recorder = StoreRecorder(store, agent)
        self.recorder.session = session
        return self.recorder

    def session_steps(self, session: str, exclude: str | None = None) -> list[MemoryStep]:
        """The memory steps of every top-level run of `session` but `exclude`, oldest run first."""
        from ..memory import MemoryStep

        store = self.store
        assert store is not None, "begin() refuses a session without a store"
        steps: list[MemoryStep] = []
        for run in reversed(store.list_runs(session=session)):
            if run.parent_run_id is None and run.run_id != exclude:
                steps += [MemoryStep.from_dict(d) for d in store.steps(run.run_id)]
        return steps
