"""Skeleton: validation, helpers and immutability."""

from __future__ import annotations

import numpy as np
import pytest

import fastkin
from conftest import SMPL_PARENTS, bvh_test_files
from reference import bvh_hierarchy, fk_reference


def test_helpers():
    sk = fastkin.Skeleton(SMPL_PARENTS, np.ones((24, 3)), names=[f"j{i}" for i in range(24)])
    assert sk.num_joints == 24
    assert sk.children(0) == (1, 2, 3)
    assert sk.children("j9") == (12, 13, 14)
    assert sk.children(23) == ()
    assert sk.index("j17") == 17
    assert sk.roots == (0,)
    np.testing.assert_array_equal(sk.rest_pose(), np.tile([0.0, 0, 0, 1], (24, 1)))
    assert sk.parents.dtype == np.int32 and list(sk.parents) == SMPL_PARENTS
    assert "24 joints" in repr(sk)


def test_forest_and_single_joint():
    forest = fastkin.Skeleton([-1, 0, -1, 2], np.zeros((4, 3)))
    assert forest.roots == (0, 2)
    single = fastkin.Skeleton([-1], [[1.0, 2.0, 3.0]])
    _, positions = fastkin.fk_batch(single, np.array([[0.0, 0, 0, 1]]))
    np.testing.assert_array_equal(positions, [[1.0, 2.0, 3.0]])


def test_arrays_are_read_only_and_rest_rotations_normalised():
    sk = fastkin.Skeleton([-1, 0], np.zeros((2, 3)), rest_rotations=[[0, 0, 0, 2.0], [0, 0, 3.0, 0]])
    np.testing.assert_allclose(np.linalg.norm(sk.rest_rotations, axis=1), 1.0)
    for array in (sk.parents, sk.offsets, sk.rest_rotations):
        with pytest.raises(ValueError):
            array[0] = 0
    with pytest.raises(AttributeError):
        sk.offsets = np.zeros((2, 3))


def test_equality():
    a = fastkin.Skeleton([-1, 0], [[0, 0, 0], [1, 0, 0]])
    assert a == fastkin.Skeleton([-1, 0], [[0, 0, 0], [1, 0, 0]])
    assert a != fastkin.Skeleton([-1, 0], [[0, 0, 0], [2, 0, 0]])


@pytest.mark.parametrize("path", bvh_test_files()[:4], ids=lambda p: p.name)
def test_subset_keeps_rest_world_positions(path, rng):
    parents, offsets, names = bvh_hierarchy(path)
    rest = rng.normal(size=(len(parents), 4))
    sk = fastkin.Skeleton(parents, offsets, rest_rotations=rest, names=names)
    keep = sorted(set(rng.choice(len(parents), size=max(1, len(parents) // 2), replace=False).tolist()))
    sub = sk.subset([names[j] for j in keep])
    _, full_positions = fk_reference(parents, offsets, sk.rest_rotations)
    _, sub_positions = fk_reference(sub.parents, sub.offsets, sub.rest_rotations)
    np.testing.assert_allclose(sub_positions, full_positions[keep], atol=1e-9)
    assert sub.names == tuple(names[j] for j in keep)


@pytest.mark.parametrize(
    "parents, error, match",
    [
        ([0], ValueError, r"parents\[0\] = 0"),
        ([-1, 2, 1], ValueError, r"topological"),
        ([-1, 1], ValueError, r"parents\[1\] = 1"),  # self loop (a cycle)
        ([-1, -2], ValueError, r"parents\[1\] = -2"),
        ([-1, 0.5], TypeError, r"parents must hold integers"),
        ([[-1, 0]], ValueError, r"parents must be a 1-D"),
        ([], ValueError, r"at least one joint"),
    ],
)
def test_invalid_parents(parents, error, match):
    with pytest.raises(error, match=match):
        fastkin.Skeleton(parents, np.zeros((max(1, np.size(parents)), 3)))


def test_invalid_offsets_names_and_rest():
    with pytest.raises(ValueError, match=r"offsets must have shape \(2, 3\)"):
        fastkin.Skeleton([-1, 0], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="offsets must be finite"):
        fastkin.Skeleton([-1, 0], [[0, 0, 0], [np.inf, 0, 0]])
    with pytest.raises(TypeError, match="offsets"):
        fastkin.Skeleton([-1, 0], [["a", "b", "c"], ["d", "e", "f"]])
    with pytest.raises(ValueError, match="unique"):
        fastkin.Skeleton([-1, 0], np.zeros((2, 3)), names=["a", "a"])
    with pytest.raises(ValueError, match="names must be 2 strings"):
        fastkin.Skeleton([-1, 0], np.zeros((2, 3)), names=["a"])
    with pytest.raises(ValueError, match="zero quaternion"):
        fastkin.Skeleton([-1, 0], np.zeros((2, 3)), rest_rotations=np.zeros((2, 4)))
    sk = fastkin.Skeleton([-1, 0], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no joint named 'hand'"):
        sk.index("hand")
    with pytest.raises(ValueError, match="out of range"):
        sk.children(5)
    with pytest.raises(TypeError, match="joint"):
        sk.children(1.0)
