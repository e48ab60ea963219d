"""`open_store(spec)`: a store from a path, an `sqlite:///` or `postgresql://` URL, or None; the default location."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .base import Store, StoreError

__all__ = ["open_store", "codeloop_home", "default_store_path"]


def codeloop_home() -> Path:
    """`$CODELOOP_HOME`, else the platform's user data folder for codeloop.

    Linux and other Unix: `$XDG_DATA_HOME/codeloop` (default `~/.local/share/codeloop`); macOS:
    `~/Library/Application Support/codeloop`; Windows: `%LOCALAPPDATA%\\codeloop`.
    """
    explicit = os.environ.get("CODELOOP_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "codeloop"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "codeloop"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "codeloop"


def default_store_path() -> Path:
    """Where runs are recorded when no store is given: `codeloop_home() / "runs.db"`."""
    return codeloop_home() / "runs.db"


def open_store(spec: str | os.PathLike[str] | Store | None = "default") -> Store | None:
    """The store `spec` names, opened (and created or migrated when needed).

    - `"default"`: SQLite at `$CODELOOP_HOME/runs.db` (see `codeloop_home`);
    - a path, or `sqlite:///relative.db`, `sqlite:////absolute.db` (options: `?max_page_count=N` caps its
      size, `?synchronous=full` syncs every commit to the disk: see `SQLiteStore`);
    - `postgresql://user:pass@host/db` (needs `pip install 'codeloop[postgres]'`);
    - a `Store` object: returned as is; `None`: no store (recording off).

    Raises `StoreError` naming the file or server when it cannot be used, `ValueError` for a spec of another kind.
    """
    if spec is None:
        return None
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        if all(hasattr(spec, name) for name in ("start_run", "finish_run", "journal", "list_runs")):
            return spec
        raise ValueError(
            f"store={spec!r} is not a store: pass a path, 'sqlite:///runs.db', 'postgresql://...', "
            "a Store object, or None to record nothing"
        )
    text = spec.strip()
    if not text:
        raise ValueError("store='' is empty: pass a path, a sqlite:/// or postgresql:// URL, or None")
    if text == "default":
        from .sqlite import SQLiteStore

        return SQLiteStore(default_store_path())
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        import importlib

        try:  # by name: the backend and its driver (psycopg 3) load only for a postgresql:// store
            backend: Any = importlib.import_module("codeloop.store.postgres")
        except ImportError as exc:
            raise StoreError(
                f"a PostgreSQL store needs psycopg 3: pip install 'codeloop[postgres]' ({exc})"
            ) from exc
        store: Store = backend.PostgresStore(text)
        return store
    if scheme == "sqlite":
        parts = urlsplit(text)
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if parts.netloc or not path:
            raise ValueError(
                f"store={spec!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        options = parse_qs(parts.query)
        unknown = set(options) - {"max_page_count", "synchronous"}
        if unknown:
            raise ValueError(
                f"store={spec!r}: unknown option(s) {sorted(unknown)}; known: max_page_count, synchronous"
            )
        pages = options.get("max_page_count")
        from .sqlite import SQLiteStore

        return SQLiteStore(
            path,
            max_page_count=int(pages[0]) if pages else None,
            synchronous=options.get("synchronous", ["normal"])[0].lower(),
        )
    if scheme:
        raise ValueError(
            f"store={spec!r}: unknown scheme {scheme!r}; use a path, sqlite:///..., postgresql://... or None"
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(text)
