"""Helpers shared by the text-format readers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import re

import numpy as np

from .. import _core
from .errors import FormatError, line_of


_TOKEN = re.compile(rb"\S+")


def read_numbers(raw: bytes, start: int, path: Path) -> np.ndarray:
    """All whitespace-separated numbers of ``raw[start:]`` (parsed in C++),
    or a FormatError naming the line of the first malformed or non-finite
    token."""
    numbers, error_at = _core.parse_numbers(raw[start:])
    if error_at < 0:
        bad = np.flatnonzero(~np.isfinite(numbers))
        if not bad.size:
            return numbers
        # The k-th number: find its offset by counting tokens (rare path).
        error_at = [m.start() for m in _TOKEN.finditer(raw, start)][int(bad[0])] - start
    token = raw[start + error_at :].split(None, 1)[0][:30].decode(errors="replace")
    raise FormatError(path, line_of(raw, start + error_at), f"malformed or non-finite number {token!r}")


def number(text: str, path: Path, line: Optional[int], what: str) -> float:
    """``float(text)``, finite, or a FormatError saying what it should be."""
    try:
        value = float(text)
    except ValueError:
        raise FormatError(path, line, f"{what} must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise FormatError(path, line, f"{what} must be finite, got {text!r}")
    return value
