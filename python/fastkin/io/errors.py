"""The one error type every reader raises for a malformed file."""

from __future__ import annotations

import os
from typing import Optional, Union


class FormatError(ValueError):
    """A file that cannot be read: ``path:line: what is wrong``.

    Subclasses ValueError, so ``except ValueError`` also catches it.
    ``path`` and ``line`` (1-based, or None when no single line is to blame)
    are kept as attributes.

    Example:
        >>> str(FormatError("walk.bvh", 12, "unknown channel 'Wrotation'"))
        "walk.bvh:12: unknown channel 'Wrotation'"
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], line: Optional[int], message: str) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


def line_of(text: Union[str, bytes], offset: int) -> int:
    """1-based line number of ``offset`` in ``text``."""
    newline = "\n" if isinstance(text, str) else b"\n"
    return text.count(newline, 0, offset) + 1  # type: ignore[arg-type]
