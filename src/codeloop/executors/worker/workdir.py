"""The files in a working directory, listed and read safely: shared by the sandbox's worker and `LocalExecutor`.

Standard library only: this module is also shipped into the sandbox (as `codeloop_sandbox_workdir`), where the
worker answers the host's ``files`` and ``read`` messages with it. Only regular files are listed and read: a
symbolic link (which could point anywhere), a FIFO (which would block a reader) or a device is skipped, and a
path that leaves the directory (absolute, ``..``, or through a link) is refused. Listing is bounded (the number
of files reported and of entries visited) and reading goes in bounded chunks, so a huge tree or a 2 GB file
costs neither memory nor a long wait.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing is slow to import; the sandbox imports this module on every start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["scan", "read_chunk", "check_relative", "MAX_CHUNK_BYTES", "DEFAULT_MAX_FILES"]

MAX_CHUNK_BYTES = 4 * 2**20
"""The most one `read_chunk` returns (a message carries it base64-encoded, well under the message limit)."""
DEFAULT_MAX_FILES = 1000
_VISITS_PER_FILE = 10
"""Directory entries visited per file reported at most: a tree of empty directories cannot make a scan endless."""


def check_relative(path: str) -> str:
    """`path` as a clean relative path ('/'-separated); ValueError when it is absolute, empty or goes up."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValueError(f"not a file path: {path!r}")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise ValueError(f"{path!r} is absolute: name a file inside the working directory")
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"{path!r} leaves the working directory")
    return "/".join(parts)


def scan(root: str, max_files: int = DEFAULT_MAX_FILES) -> dict[str, Any]:
    """The regular files under `root`: ``{"files": [[path, size, mtime_ns], ...], "truncated": bool}``.

    Paths are relative to `root`. Links are neither listed nor followed. At most `max_files` are reported;
    `truncated` says there were more (or more entries than the scan visits)."""
    files: list[list[Any]] = []
    truncated = False
    budget = max(1, max_files) * _VISITS_PER_FILE
    pending = [""]
    while pending and not truncated:
        relative = pending.pop()
        try:
            entries = os.scandir(os.path.join(root, relative) if relative else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                budget -= 1
                if budget < 0:
                    truncated = True
                    break
                path = f"{relative}/{entry.name}" if relative else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    info = entry.stat(follow_symlinks=False)
                except OSError:  # removed meanwhile
                    continue
                if len(files) >= max_files:
                    truncated = True
                    break
                files.append([path, info.st_size, info.st_mtime_ns])
    files.sort()
    return {"files": files, "truncated": truncated}


def read_chunk(root: str, path: str, offset: int = 0, length: int = MAX_CHUNK_BYTES) -> tuple[bytes, int]:
    """Up to `length` bytes (at most `MAX_CHUNK_BYTES`) of the regular file `path` under `root`, from
    `offset`, and the file's size. ValueError for a path outside `root`, through a link, or not a regular file;
    OSError when it cannot be read."""
    relative = check_relative(path)
    base = os.path.realpath(root)
    target = os.path.join(base, *relative.split("/"))
    # Every component must be what it says: a link anywhere on the way could lead outside `root`.
    if os.path.realpath(target) != target:
        raise ValueError(
            f"{path!r} goes through a symbolic link: only files inside the working directory are read"
        )
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(target, flags)
    except OSError as exc:
        raise OSError(f"{path!r} cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path!r} is not a regular file")
        length = max(0, min(int(length), MAX_CHUNK_BYTES))
        os.lseek(descriptor, max(0, int(offset)), os.SEEK_SET)
        data = b""
        while len(data) < length:
            piece = os.read(descriptor, length - len(data))
            if not piece:
                break
            data += piece
        return data, info.st_size
    finally:
        os.close(descriptor)
