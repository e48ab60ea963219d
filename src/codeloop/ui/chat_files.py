"""Files the agent's code wrote, offered in the chat after each step: listed, copied out, downloadable.

When a run starts, the working directory of the agent's executor (the sandbox's, or `LocalExecutor(workdir=...)`)
is listed; after each step it is listed again and the new or changed files are copied into the session's own
folder on the host, chunk by chunk, each under a random token. The page gets their names, sizes and download
links (images are shown too). A file over the size limit is named with its size and not copied; a step that
changed more files than are offered says how many were left out. Downloads serve only these copies, looked up by
the session's own tokens, so one browser session can never fetch another's files, and no name the code chose can
point the host anywhere else: the copy's name on the host is the token and a cleaned base name.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ProducedFiles", "IMAGE_SUFFIXES", "MAX_FILES_PER_STEP"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
"""Files shown inline as well as offered (no SVG: it can carry script)."""
MAX_FILES_PER_STEP = 20
_LISTED_FILES = 2000
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ +=,@-]")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count:,} bytes"


def _clean_name(name: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name).strip(". ") or "file"
    return cleaned[:120]


def executor_with_files(agent: Any) -> Any:
    """The agent's executor when it can list its files (a CodeAgent's); None otherwise.

    A `LocalExecutor` without a `workdir` of its own is left out: its working directory is the server's (its run
    store, its logs), whose changes are not the code's."""
    if not hasattr(agent, "executor_spec"):
        return None
    executor = agent.executor
    if getattr(executor, "workdir", "") is None:
        return None
    return executor if hasattr(executor, "files_changed") and hasattr(executor, "copy_file") else None


class ProducedFiles:
    """Tracks, per agent of a session, what its executor's working directory held; offers what changed."""

    def __init__(self, folder: Path, max_file_bytes: int, register: Callable[[str, Path], None]) -> None:
        self.folder = folder
        self.max_file_bytes = max_file_bytes
        self._register = register
        self._listings: dict[int, Any] = {}

    def run_started(self, agent: Any) -> None:
        """Remember what the working directory holds now: files from before this run are not offered again."""
        executor = executor_with_files(agent)
        if executor is not None:
            self._listings[id(agent)] = executor.list_files(_LISTED_FILES)

    def step_finished(self, agent: Any, step: int | None) -> dict[str, Any] | None:
        """The page's ``files`` item for what the step wrote (None when nothing changed)."""
        executor = executor_with_files(agent)
        if executor is None:
            return None
        changes = executor.files_changed(self._listings.get(id(agent)), _LISTED_FILES)
        self._listings[id(agent)] = changes.listing
        if not changes.files and not changes.truncated:
            return None
        offered = [self._offer(executor, found) for found in changes.files[:MAX_FILES_PER_STEP]]
        notes = []
        if len(changes.files) > MAX_FILES_PER_STEP:
            notes.append(f"{len(changes.files) - MAX_FILES_PER_STEP} more changed files are not offered")
        if changes.truncated:
            notes.append(
                f"the working directory holds over {_LISTED_FILES:,} files: only those were compared"
            )
        return {"type": "files", "step": step, "files": offered, "note": "; ".join(notes)}

    def _offer(self, executor: Any, found: Any) -> dict[str, Any]:
        described: dict[str, Any] = {"name": found.name, "path": found.path, "size": _size(found.size)}
        if found.size > self.max_file_bytes:
            described["note"] = f"too large to offer (the limit is {_size(self.max_file_bytes)})"
            return described
        token = secrets.token_urlsafe(12)
        target = self.folder / token / _clean_name(found.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            executor.copy_file(found.path, target, max_bytes=self.max_file_bytes)
        except (OSError, ValueError) as exc:  # removed, grown past the limit or made a link since the listing
            with contextlib.suppress(OSError):
                shutil.rmtree(target.parent)
            described["note"] = f"could not be copied: {exc}"
            return described
        self._register(token, target)
        described["url"] = f"files/{token}/{target.name}"
        described["image"] = target.suffix.lower() in IMAGE_SUFFIXES
        return described
