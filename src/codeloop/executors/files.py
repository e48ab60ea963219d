"""The files an executor's code wrote: list the working directory, see what changed, read or copy a file.

`LocalExecutor` and every worker executor (the sandbox, Docker, E2B, Modal: one worker protocol) have
`list_files`, `files_changed`, `read_file` and `copy_file`:

    before = executor.list_files()
    executor.run("open('out.csv', 'w').write('a,b')")
    changes = executor.files_changed(before)       # out.csv, new
    executor.copy_file("out.csv", "/tmp/out.csv", max_bytes=10 * 2**20)
    later = executor.files_changed(changes.listing)  # only what changed since then

Only regular files inside the working directory are listed or read (no symbolic links, no FIFOs, nothing outside
it); listings are bounded (`max_files`, `truncated` says when there were more) and files are read in chunks,
never whole into memory, with a size limit on every read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .worker.workdir import DEFAULT_MAX_FILES, MAX_CHUNK_BYTES, check_relative

__all__ = [
    "WorkdirFile",
    "FileListing",
    "FileChanges",
    "FileTooLargeError",
    "WorkdirFiles",
    "DEFAULT_MAX_FILES",
    "MAX_CHUNK_BYTES",
]


@dataclass(frozen=True)
class WorkdirFile:
    """A regular file in the working directory: its relative path ('/'-separated), size and modification time."""

    path: str
    size: int
    modified_ns: int

    @property
    def name(self) -> str:
        """The file's own name (the last part of its path)."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FileListing:
    """The working directory's files at one moment; `truncated` when there were more than were listed."""

    files: tuple[WorkdirFile, ...] = ()
    truncated: bool = False

    @classmethod
    def from_rows(cls, rows: Any, truncated: Any = False) -> FileListing:
        """A listing from ``[[path, size, mtime_ns], ...]`` as a worker sends it (untrusted: malformed rows and
        paths that leave the directory are dropped)."""
        files = []
        for row in rows if isinstance(rows, list) else []:
            if not (isinstance(row, list) and len(row) == 3):
                continue
            path, size, modified = row
            if not (isinstance(size, int) and isinstance(modified, int) and size >= 0):
                continue
            try:
                files.append(WorkdirFile(check_relative(path), size, modified))
            except ValueError:
                continue
        return cls(tuple(files), bool(truncated))

    def changed_since(self, before: FileListing | None) -> list[WorkdirFile]:
        """The files that are new, or whose size or modification time differ, since `before` (None: all)."""
        old = {} if before is None else {f.path: (f.size, f.modified_ns) for f in before.files}
        return [f for f in self.files if old.get(f.path) != (f.size, f.modified_ns)]


@dataclass(frozen=True)
class FileChanges:
    """What `files_changed` found: the new or changed `files`, and the `listing` to compare with next time."""

    files: list[WorkdirFile] = field(default_factory=list)
    listing: FileListing = field(default_factory=FileListing)

    @property
    def truncated(self) -> bool:
        """The working directory held more files than were listed: changes among the others are not seen."""
        return self.listing.truncated


class FileTooLargeError(ValueError):
    """A file is larger than the size limit of the read or copy asked for."""


class WorkdirFiles:
    """`files_changed`, `read_file` and `copy_file`, built on an executor's `list_files` and `_read_chunk`."""

    def list_files(self, max_files: int = DEFAULT_MAX_FILES) -> FileListing:
        """The regular files in the code's working directory (at most `max_files`)."""
        raise NotImplementedError

    def _read_chunk(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        """Up to `length` bytes of `path` from `offset`, and the file's size."""
        raise NotImplementedError

    def _chunk_bytes(self) -> int:
        return MAX_CHUNK_BYTES

    def files_changed(
        self, since: FileListing | None = None, max_files: int = DEFAULT_MAX_FILES
    ) -> FileChanges:
        """The files new or changed since the listing `since` (every file when None), with the new listing."""
        listing = self.list_files(max_files)
        return FileChanges(listing.changed_since(since), listing)

    def file_size(self, path: str) -> int:
        """The size in bytes of the regular file `path` in the working directory (nothing is read)."""
        return self._read_chunk(check_relative(path), 0, 0)[1]

    def read_file(self, path: str, *, max_bytes: int = MAX_CHUNK_BYTES) -> bytes:
        """The content of `path` (relative to the working directory); `FileTooLargeError` beyond `max_bytes`,
        checked before anything is read."""
        return b"".join(self._chunks(check_relative(path), max_bytes))

    def copy_file(self, path: str, destination: str | os.PathLike[str], *, max_bytes: int) -> int:
        """Copy `path` from the working directory to the host file `destination`, chunk by chunk; its size.
        `FileTooLargeError` beyond `max_bytes` (checked before anything is read or written)."""
        relative = check_relative(path)
        target = Path(destination)
        written = 0
        chunks = self._chunks(relative, max_bytes)  # the size is checked here, before the destination exists
        with open(target, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
        return written

    def _chunks(self, relative: str, max_bytes: int) -> Iterator[bytes]:
        # Not a generator itself: the size is checked when this is called, not at the first chunk.
        size = self._read_chunk(relative, 0, 0)[1]
        if size > max_bytes:
            raise FileTooLargeError(f"{relative} is {size:,} bytes, over the limit of {max_bytes:,}")
        return self._chunk_iterator(relative, size)

    def _chunk_iterator(self, relative: str, size: int) -> Iterator[bytes]:
        offset = 0
        step = self._chunk_bytes()
        while offset < size:
            data, _ = self._read_chunk(relative, offset, min(step, size - offset))
            if not data:  # the file shrank meanwhile: what is there is what there is
                return
            yield data
            offset += len(data)


def describe_files(files: Sequence[WorkdirFile]) -> str:
    """A short line naming files and their sizes, for logs and notes."""
    return ", ".join(f"{f.path} ({f.size:,} bytes)" for f in files)
