"""The background heartbeat: a recording process keeps its running runs' heartbeat fresh between steps.

A step written renews its run's heartbeat in the same commit; a step can last long (a slow model call, a long
tool), so one thread per process also renews every running run's heartbeat each `liveness.HEARTBEAT_SECONDS`. A
reader on another host settles a run whose heartbeat stopped long ago as abandoned (see `liveness`). The thread
runs only while some run is being recorded, so a process that records nothing has no extra thread.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from . import liveness

__all__ = ["beat_while_running", "stop_beating"]

_lock = threading.Lock()
_runs: dict[str, Any] = {}  # run id -> its store
_wake = threading.Condition(_lock)
_thread: threading.Thread | None = None


def beat_while_running(run_id: str, store: Any) -> None:
    """Renew `run_id`'s heartbeat in `store` in the background until `stop_beating(run_id)`."""
    global _thread
    if getattr(store, "heartbeat", None) is None:
        return  # a store without heartbeats (a custom one): runs elsewhere cannot tell, as before
    with _lock:
        _runs[run_id] = store
        if _thread is None or not _thread.is_alive():  # also after a fork: the parent's thread is not here
            _thread = threading.Thread(target=_beat, name="codeloop-heartbeat", daemon=True)
            _thread.start()


def stop_beating(run_id: str) -> None:
    """The run ended (or paused): no more heartbeats for it; the thread ends when no run is left."""
    global _thread
    with _lock:
        _runs.pop(run_id, None)
        thread = _thread if not _runs else None
        if thread is not None:
            _thread = None
            _wake.notify_all()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout=5)


def _beat() -> None:
    me = threading.current_thread()
    while True:
        with _lock:
            _wake.wait(liveness.HEARTBEAT_SECONDS)
            if _thread is not me:
                return
            by_store: dict[int, tuple[Any, list[str]]] = {}
            for run_id, store in _runs.items():
                by_store.setdefault(id(store), (store, []))[1].append(run_id)
        for store, run_ids in by_store.values():
            try:
                store.heartbeat(run_ids)
            except Exception as exc:  # the next beat (or step) tries again; a run is never broken by it
                warnings.warn(
                    f"could not renew the heartbeat of runs in {store.url}: {exc}",
                    RuntimeWarning,
                    stacklevel=1,
                )
