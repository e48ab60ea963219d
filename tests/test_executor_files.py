"""The files an executor's code wrote: listed, compared between steps, read and copied in bounded chunks, with
nothing outside the working directory reachable (links, `..`, absolute paths, FIFOs). The sandbox through the real
worker protocol (one sandbox for the module), LocalExecutor on a folder of the host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeloop.executors import LocalExecutor, SandboxExecutor
from codeloop.executors.files import FileListing, FileTooLargeError


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(max_message_mb=1) as executor:  # 1 MiB messages: a 3 MB file takes several chunks
        yield executor


def test_a_file_written_in_a_later_step_is_reported_with_only_what_changed(sandbox: SandboxExecutor) -> None:
    sandbox.run("import os\nopen('first.txt', 'w').write('one')")
    start = sandbox.files_changed()
    assert "first.txt" in [f.path for f in start.files]
    sandbox.run("x = 1")  # a step that writes nothing
    quiet = sandbox.files_changed(start.listing)
    assert quiet.files == []
    sandbox.run("os.makedirs('out/plots', exist_ok=True)\nopen('out/plots/p.csv', 'w').write('a,b\\n1,2')")
    sandbox.run("open('first.txt', 'a').write(' more')")
    later = sandbox.files_changed(quiet.listing)
    assert {(f.path, f.size) for f in later.files} == {("out/plots/p.csv", 7), ("first.txt", 8)}
    assert sandbox.read_file("out/plots/p.csv") == b"a,b\n1,2"


def test_links_fifos_and_paths_outside_are_neither_listed_nor_read(sandbox: SandboxExecutor) -> None:
    sandbox.run(
        "import os\nos.makedirs('inner', exist_ok=True)\n"
        "os.symlink('/etc', 'inner/etc_link')\nos.symlink(os.__file__, 'module_link')\nos.mkfifo('pipe')"
    )
    listed = [f.path for f in sandbox.list_files().files]
    assert not any(name in path for path in listed for name in ("etc_link", "module_link", "pipe"))
    for path, why in (
        ("module_link", "symbolic link"),
        ("inner/etc_link/hostname", "symbolic link"),
        ("pipe", "not a regular file"),
        ("../etc/hostname", "leaves the working directory"),
        ("/etc/hostname", "is absolute"),
    ):
        with pytest.raises(ValueError, match=why):
            sandbox.read_file(path)


def test_a_large_file_is_refused_before_reading_and_copied_in_chunks(
    sandbox: SandboxExecutor, tmp_path: Path
) -> None:
    sandbox.run("open('big.bin', 'wb').write(bytes(range(256)) * 12_000)")  # 3,072,000 bytes
    target = tmp_path / "big.bin"
    with pytest.raises(FileTooLargeError, match="3,072,000 bytes, over the limit of 1,000,000"):
        sandbox.copy_file("big.bin", target, max_bytes=1_000_000)
    assert not target.exists()
    assert sandbox.copy_file("big.bin", target, max_bytes=5_000_000) == 3_072_000
    assert target.read_bytes() == bytes(range(256)) * 12_000
    assert sandbox.file_size("big.bin") == 3_072_000


def test_a_listing_is_bounded_and_says_so(sandbox: SandboxExecutor) -> None:
    sandbox.run(
        "import os\nos.makedirs('many', exist_ok=True)\nfor i in range(30): open(f'many/{i}', 'w').close()"
    )
    listing = sandbox.list_files(max_files=10)
    assert len(listing.files) == 10 and listing.truncated
    with pytest.raises(ValueError, match="max_files"):
        sandbox.list_files(max_files=0)


def test_rows_from_a_worker_that_leave_the_folder_are_dropped() -> None:
    rows = [
        ["ok.txt", 1, 2],
        ["../../etc/passwd", 1, 2],
        ["/abs", 1, 2],
        ["x", -1, 2],
        "junk",
        ["a/./b", 3, 4],
    ]
    listing = FileListing.from_rows(rows, False)
    assert [f.path for f in listing.files] == ["ok.txt", "a/b"]


def test_local_executor_lists_its_workdir_without_following_links(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    with LocalExecutor(workdir=work) as executor:
        before = executor.list_files()
        (work / "report.txt").write_text("done")
        os.symlink(secret, work / "leak.txt")
        os.symlink(tmp_path, work / "up")
        changes = executor.files_changed(before)
        assert [f.path for f in changes.files] == ["report.txt"]
        assert executor.read_file("report.txt") == b"done"
        for path in ("leak.txt", "up/secret.txt", "../secret.txt"):
            with pytest.raises(ValueError):
                executor.read_file(path)


def test_local_executor_refuses_a_huge_file_without_reading_it(tmp_path: Path) -> None:
    with open(tmp_path / "huge.bin", "wb") as huge:
        huge.truncate(2 * 2**30)  # 2 GiB, sparse: reading it whole would need 2 GiB of memory
    with LocalExecutor(workdir=tmp_path) as executor:
        [listed] = executor.list_files().files
        assert listed.size == 2 * 2**30
        with pytest.raises(FileTooLargeError, match="2,147,483,648 bytes"):
            executor.read_file("huge.bin", max_bytes=50 * 2**20)


def test_local_executor_needs_an_existing_workdir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        LocalExecutor(workdir=tmp_path / "missing")
