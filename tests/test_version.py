"""The version is written once, in pyproject.toml; the installed package
reports it."""

from __future__ import annotations

from pathlib import Path

import pytest

import fastkin

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_comes_from_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    if not PYPROJECT.is_file():
        pytest.skip("no pyproject.toml beside the tests")
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert fastkin.__version__ == declared == fastkin.build_info()["version"]
