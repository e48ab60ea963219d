"""Optional dependencies (extras): finding out, without importing them, whether they are installed.

A model or executor whose SDK is missing must say so when it is created, not after a run has started and a
paid model call was made; `importlib.util.find_spec` answers that without paying for the import.
"""

from __future__ import annotations

import importlib.util

__all__ = ["is_installed", "install_hint"]


def is_installed(module: str) -> bool:
    """Whether `module` can be imported (False also when `sys.modules[module]` is None, Python's marker for
    a module that must not be imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def install_hint(extra: str) -> str:
    """The command that installs codeloop's `extra`, quoted so that shells leave the brackets alone."""
    return f'pip install "codeloop[{extra}]"'
