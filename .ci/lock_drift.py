"""Print where the running environment's packages differ from a requirements lock (used by `make test-latest`).

Usage: python .ci/lock_drift.py requirements-dev.lock
Always exits 0: drift is information; the test run after it says whether the drift matters.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata


def _normalize(name: str) -> str:
    # PEP 503: the lock writes "pydantic-core", the installed metadata may say "pydantic_core".
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock_text: str) -> dict[str, str]:
    """`name -> version` for every `name==version` line of a requirements lock."""
    pins: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def installed_versions() -> dict[str, str]:
    """`name -> version` for every distribution importable from this interpreter."""
    return {_normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


# Not the project's dependencies: the project itself, and the build tools the lock carries only so that the
# locked venvs build codeloop without build isolation (the latest venv builds it in isolation instead).
_NOT_COMPARED = {"codeloop", "pip", "setuptools", "wheel"}


def main(lock_path: str) -> int:
    with open(lock_path, encoding="utf-8") as handle:
        locked = {k: v for k, v in locked_versions(handle.read()).items() if k not in _NOT_COMPARED}
    installed = {k: v for k, v in installed_versions().items() if k not in _NOT_COMPARED}
    changed = [
        (n, locked[n], installed[n]) for n in sorted(locked) if n in installed and installed[n] != locked[n]
    ]
    added = sorted(set(installed) - set(locked))
    dropped = sorted(set(locked) - set(installed))
    if not (changed or added or dropped):
        print(f"newest allowed versions == {lock_path}")
        return 0
    print(f"newest allowed versions vs {lock_path}:")
    for name, old, new in changed:
        print(f"  {name}: {old} -> {new}")
    for name in added:
        print(f"  {name}: not in the lock, now {installed[name]}")
    for name in dropped:
        print(f"  {name}: {locked[name]} in the lock, no longer needed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
