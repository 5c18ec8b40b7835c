"""Shared fixtures: where the real data lives, and small skeleton factories."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The real-data folder: $FASTKIN_SHARED_DATA, else ../shared/data beside
    the checkout (see the project README)."""
    return Path(os.environ.get("FASTKIN_SHARED_DATA", REPO.parent / "shared" / "data"))


def bvh_test_files() -> list[Path]:
    folder = shared_data() / "test" / "bvh"
    return sorted(folder.glob("*.bvh")) if folder.is_dir() else []


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
