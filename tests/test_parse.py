"""The C++ number parser behind the text readers, against Python's float()."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastkin import _core

FORMATS = ["{!r}", "{:e}", "{:.3f}", "{:+.6g}", "{:E}", "{:.0f}"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(allow_nan=False, allow_infinity=False, width=64), st.sampled_from(FORMATS)), max_size=40
    ),
    st.lists(st.sampled_from([" ", "\t", "\n", "\r\n", "  \t "]), min_size=41, max_size=41),
)
def test_parses_like_python_float(numbers, separators):
    tokens = [fmt.format(x) for x, fmt in numbers]
    text = separators[0] + "".join(t + sep for t, sep in zip(tokens, separators[1:]))
    parsed, error_at = _core.parse_numbers(text.encode())
    assert error_at == -1 and parsed.dtype == np.float64
    np.testing.assert_array_equal(parsed, np.array([float(t) for t in tokens], dtype=np.float64))


@pytest.mark.parametrize("text, where", [(b"1 2 x", 4), (b"1 2- 3", 2), (b"+-1", 0), (b"1,2", 0), (b"3 4.5.6", 2)])
def test_malformed_tokens_are_reported_with_their_offset(text, where):
    numbers, error_at = _core.parse_numbers(text)
    assert error_at == where
    assert numbers.tolist() == [float(t) for t in text[:where].split()]


def test_empty_and_whitespace_only():
    assert _core.parse_numbers(b"")[0].size == 0
    assert _core.parse_numbers(b" \n\t\r ")[0].size == 0
