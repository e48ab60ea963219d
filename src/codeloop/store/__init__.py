"""The run store: every run recorded (runs, steps, events, usage, cost, errors, journal) in SQLite or PostgreSQL."""

from __future__ import annotations

from .base import (
    SCHEMA_VERSION,
    EventRecord,
    RunNotFound,
    RunRecord,
    Store,
    StoreError,
    StoreFullError,
)

__all__ = [
    "SCHEMA_VERSION",
    "EventRecord",
    "RunNotFound",
    "RunRecord",
    "Store",
    "StoreError",
    "StoreFullError",
]
