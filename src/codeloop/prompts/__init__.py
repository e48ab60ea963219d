"""Prompt templates, kept as Markdown files beside this module.

Placeholders are written `{{name}}` so that braces in code examples stay literal.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["load_prompt", "render"]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@cache
def load_prompt(name: str) -> str:
    """The template `name` (without `.md`)."""
    return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")


def render(template: str, **values: object) -> str:
    """Fill `{{name}}` placeholders; a placeholder without a value is an error, not silent blank text."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"prompt placeholder {{{{{key}}}}} has no value; pass {key}=...")
        return str(values[key])

    return _PLACEHOLDER.sub(fill, template)
