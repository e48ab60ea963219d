"""Making text safe to leave the process: to a model's API, a terminal, a file.

Python strings can hold lone surrogates (`'\\udcff'`): agent code prints them, `os.fsdecode` makes them from
undecodable bytes, and a model's JSON can carry them as `\\udcff` escapes. UTF-8 cannot encode them, so the
first `write` or HTTP request that meets one raises `UnicodeEncodeError` far from where the text came from.
Every text that leaves codeloop goes through `encodable` first: valid surrogate pairs become the character they
spell, lone surrogates become U+FFFD (the replacement character), everything else is unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

__all__ = ["encodable", "encodable_data", "EncodableStream", "short_repr"]

REPLACEMENT = "\ufffd"


def encodable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD, so that UTF-8 (and any UTF) can encode it."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 with surrogatepass joins well-formed pairs back into one character; decoding with `replace`
        # turns whatever is left unpaired into U+FFFD.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encodable_data(value: Any) -> Any:
    """`value` with every string inside it (dict keys and values, list and tuple items) made `encodable`.

    Returns the very same object when nothing needed changing, so the common case copies nothing.
    """
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        converted = {encodable_data(k): encodable_data(v) for k, v in value.items()}
        unchanged = all(
            k1 is k2 and v1 is v2
            for (k1, v1), (k2, v2) in zip(value.items(), converted.items(), strict=False)
        )
        return value if unchanged and len(converted) == len(value) else converted
    if isinstance(value, list | tuple):
        items = [encodable_data(v) for v in value]
        if all(a is b for a, b in zip(value, items, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


class EncodableStream:
    """A text stream that writes `encodable` text to another stream, found anew on every write.

    Resolving the target on each call (by default `sys.stdout`) keeps output going wherever stdout points now:
    a `contextlib.redirect_stdout`, pytest's capture, a reassigned `sys.stdout`.
    """

    def __init__(self, target: Callable[[], IO[str]] | None = None) -> None:
        self._target = target or (lambda: sys.stdout)

    def write(self, text: str) -> int:
        """Write `text` with lone surrogates replaced; returns the length of `text` as given."""
        self._target().write(encodable(text))
        return len(text)

    def flush(self) -> None:
        """Flush the target stream."""
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding...: whatever rich asks about the terminal, the real stream answers.
        return getattr(self._target(), name)


def short_repr(value: Any, limit: int = 2000) -> str:
    """`value` as text (itself if a string, else its repr), its middle cut out past `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]
