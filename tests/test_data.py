"""The bundled data loads, and matches the shared data it was copied from."""

from __future__ import annotations

import hashlib

import pytest

import fastkin
from conftest import shared_data


def test_default_motion_and_character():
    walk = fastkin.data.default_motion()
    assert len(walk) == 524 and walk.fps == pytest.approx(120.0, rel=1e-5)
    assert len(fastkin.data.default_motion("cmu_01_01")) == 2752
    fox = fastkin.data.default_character()
    assert fox.skeleton.num_joints == 24 and len(fox.meshes) == 1
    assert "CMU" in fastkin.data.attribution()
    with pytest.raises(ValueError, match="no bundled motion"):
        fastkin.data.default_motion("dance")


@pytest.mark.parametrize(
    "bundled, original",
    [
        ("cmu_12_01_walk.bvh", "test/bvh/pybvh_cmu_12_01_walk.bvh"),
        ("cmu_01_01.bvh", "train/cmu-bvh/01_01.bvh"),
        ("Fox.glb", "test/gltf/Fox.glb"),
    ],
)
def test_bundled_files_are_unmodified_copies(bundled, original):
    source = shared_data() / original
    if not source.exists():
        pytest.skip("shared data not found")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(fastkin.data.path(bundled)) == digest(source)
