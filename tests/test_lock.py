"""The locks that `make test` and `make demo` install from still satisfy pyproject.toml.

A dependency added to pyproject.toml without `make lock` would otherwise surface as an ImportError somewhere in
the suite on a fresh clone, or not at all where a developer's venv happens to have it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# What each lock is made from (the Makefile's `lock` target): core dependencies plus one extra, plus the build
# backend, so the venvs build codeloop without fetching anything unpinned.
LOCKS = {"requirements-dev.lock": "dev", "requirements-demo.lock": "openai"}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """`name -> (version, hashes)` for every requirement of a hashed requirements lock."""
    text = (ROOT / lock).read_text(encoding="utf-8")
    pins: dict[str, tuple[str, list[str]]] = {}
    # One requirement is its `name==version` line and the `--hash` continuation lines after it.
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if match:
            pins[canonicalize_name(match.group(1))] = (
                match.group(2),
                re.findall(r"--hash=sha256:\w+", block),
            )
    return pins


@pytest.mark.parametrize("lock, extra", sorted(LOCKS.items()))
def test_lock_satisfies_pyproject(lock: str, extra: str) -> None:
    project = _pyproject()
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"][extra],
        *project["build-system"]["requires"],
    ]
    pins = _pins(lock)
    problems = []
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{requirement} does not allow the locked {pinned[0]}")
    assert not problems, f"{lock} is stale ({'; '.join(problems)}): run `make lock`"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_pins_every_package_with_a_hash(lock: str) -> None:
    # pip's hash-checking mode refuses the whole install if a single requirement lacks a hash.
    pins = _pins(lock)
    assert len(pins) > 5
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []


def test_dev_lock_takes_torch_as_the_cpu_build() -> None:
    # PyPI's torch wheels are the CUDA builds (GBs); the CPU wheel is the one the machines hold locally.
    version, hashes = _pins("requirements-dev.lock")["torch"]
    assert version.endswith("+cpu") and len(hashes) == 1
