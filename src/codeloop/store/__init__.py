"""The run store: every run recorded (runs, steps, events, usage, cost, errors, journal) in SQLite or PostgreSQL.

`open_store(spec)` opens one from a path, a `sqlite:///` or `postgresql://` URL; agents take the same as `store=`.
"""

from __future__ import annotations

from typing import Any

from .base import (
    SCHEMA_VERSION,
    EventRecord,
    RunNotFound,
    RunRecord,
    Store,
    StoreError,
    StoreFullError,
)
from .opening import codeloop_home, default_store_path, open_store

__all__ = [
    "SCHEMA_VERSION",
    "EventRecord",
    "RunNotFound",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreFullError",
    "codeloop_home",
    "default_store_path",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # sqlite3 loads only when a SQLite store is used.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
