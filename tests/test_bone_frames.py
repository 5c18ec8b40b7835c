"""Rest-pose bone frames (numpy front door): the frames, the round trip to
local rotations, and the bone direction against fk joint positions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastkin
from conftest import SMPL_PARENTS, bvh_test_files
from reference import (
    bone_frames_reference,
    bone_local_reference,
    bone_world_reference,
    local_matrices,
    primary_children_reference,
    random_quaternions,
)
from test_fk import assert_close, skeletons

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}
# float32 error grows with depth: ~1.4e-5 through a 200-joint chain (fk's own).
DEEP_TOLERANCE = {np.float64: 1e-12, np.float32: 5e-5}


@st.composite
def posed_skeletons(draw, max_joints=200):
    """A random skeleton (sometimes with rest rotations and zero-length
    bones) and its rng."""
    skeleton, rng = draw(skeletons(max_joints=max_joints))
    offsets = skeleton.offsets.copy()
    if draw(st.booleans()):
        offsets[rng.random(len(offsets)) < 0.15] = 0.0
    rest = random_quaternions(rng, (skeleton.num_joints,)) if draw(st.booleans()) else None
    return fastkin.Skeleton(skeleton.parents, offsets, rest), rng


def load_motion(path):
    with warnings.catch_warnings():  # some test files have a wrong frame count in the header
        warnings.simplefilter("ignore")
        return fastkin.io.load_bvh(path)


def frames_of(skeleton):
    return bone_frames_reference(skeleton.parents, skeleton.offsets, skeleton.rest_rotations)


def pose(rng, skeleton, batch, form, dtype):
    quats = random_quaternions(rng, batch + (skeleton.num_joints,))
    rotations = quats if form == "quat" else local_matrices(quats, skeleton.num_joints)
    return rotations.astype(dtype)


def max_error(actual, expected):
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected), initial=0.0))


# -- the frames -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(posed_skeletons())
def test_frames_are_rotations_matching_the_reference_rule(case):
    skeleton, _ = case
    frames = fastkin.bone_frames(skeleton)
    assert frames.shape == (skeleton.num_joints, 3, 3) and frames.dtype == np.float64
    assert max_error(np.swapaxes(frames, 1, 2) @ frames, np.eye(3)) < 1e-14
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-14)
    assert max_error(frames, frames_of(skeleton)) < 1e-12


def test_primary_child_rule_longest_then_lowest_index():
    #        0
    #   1 (len 2)  2 (len 3)  3 (len 3)  4 (len 0)
    offsets = [[0, 0, 0], [2, 0, 0], [0, 3, 0], [0, 0, 3], [0, 0, 0]]
    skeleton = fastkin.Skeleton([-1, 0, 0, 0, 0], offsets)
    frames = fastkin.bone_frames(skeleton)
    np.testing.assert_array_equal(frames[0][:, 0], [0, 1, 0])  # child 2: longest, before 3
    np.testing.assert_array_equal(frames[1][:, 0], [1, 0, 0])  # leaf: from its parent
    np.testing.assert_array_equal(frames[4][:, 0], [1, 0, 0])  # zero-length leaf: its rest x axis
    assert primary_children_reference(skeleton.parents, offsets) == [2, -1, -1, -1, -1]


def test_completion_rule_least_aligned_world_axis():
    skeleton = fastkin.Skeleton([-1, 0, 0, 0], [[0, 0, 0], [0, 5, 0], [0, 0, 0], [0, 0, 0]])
    up = fastkin.bone_frames(skeleton)[0]  # bone +y: x and z tie, x wins
    np.testing.assert_array_equal(up, [[0, 1, 0], [1, 0, 0], [0, 0, -1]])
    skeleton = fastkin.Skeleton([-1, 0], [[0, 0, 0], [3, 1, 2]])
    frame = fastkin.bone_frames(skeleton)[0]
    second = np.array([0, 1, 0]) - frame[1, 0] * frame[:, 0]  # y is least aligned with (3, 1, 2)
    np.testing.assert_allclose(frame[:, 1], second / np.linalg.norm(second), atol=1e-15)
    np.testing.assert_allclose(frame[:, 2], np.cross(frame[:, 0], frame[:, 1]), atol=1e-15)


def test_childless_root_uses_its_rest_x_axis(rng):
    rest = random_quaternions(rng, (1,))
    skeleton = fastkin.Skeleton([-1], [[1.0, 2.0, 3.0]], rest)
    rest_x = local_matrices(rest, 1)[0][:, 0]
    np.testing.assert_allclose(fastkin.bone_frames(skeleton)[0][:, 0], rest_x, atol=1e-15)


def test_primary_child_override():
    skeleton = fastkin.Skeleton(
        [-1, 0, 0, 1], [[0, 0, 0], [0, 2, 0], [1, 0, 0], [0, 0, 1]], names=["root", "long", "short", "tip"]
    )
    np.testing.assert_array_equal(fastkin.bone_frames(skeleton)[0][:, 0], [0, 1, 0])
    for override in ({0: 2}, {"root": "short"}, [2, 3, -1, -1], np.array([2, 3, -1, -1])):
        frames = fastkin.bone_frames(skeleton, primary_child=override)
        np.testing.assert_array_equal(frames[0][:, 0], [1, 0, 0])
        np.testing.assert_array_equal(frames[1:], fastkin.bone_frames(skeleton)[1:])
    as_leaf = fastkin.bone_frames(skeleton, primary_child={"long": -1})
    np.testing.assert_array_equal(as_leaf[1][:, 0], [0, 1, 0])  # from its parent now
    expected = bone_frames_reference(skeleton.parents, skeleton.offsets, skeleton.rest_rotations, [2, -1, -1, -1])
    assert max_error(fastkin.bone_frames(skeleton, primary_child=[2, -1, -1, -1]), expected) < 1e-15


def test_leaf_axis_override(rng):
    rest = random_quaternions(rng, (3,))
    skeleton = fastkin.Skeleton([-1, 0, 0], rng.normal(size=(3, 3)), rest)
    rest_world = fastkin.fk_batch(skeleton, rest)[0]
    frames = fastkin.bone_frames(skeleton, leaf_axis=[0, 0, 2])
    for leaf in (1, 2):
        np.testing.assert_allclose(frames[leaf][:, 0], rest_world[leaf][:, 2], atol=1e-14)
    np.testing.assert_array_equal(frames[0], fastkin.bone_frames(skeleton)[0])
    per_joint = [[9, 9, 9], [0, 1, 0], [1, 0, 0]]  # row 0 unused: joint 0 has a primary child
    frames = fastkin.bone_frames(skeleton, leaf_axis=per_joint)
    np.testing.assert_allclose(frames[1][:, 0], rest_world[1][:, 1], atol=1e-14)
    np.testing.assert_allclose(frames[2][:, 0], rest_world[2][:, 0], atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"primary_child": {0: 3}}, ValueError, "primary_child: joint 3 (d) is not a child of joint 0 (a)"),
        ({"primary_child": [1, 2]}, ValueError, "primary_child must have one entry per joint (4)"),
        ({"primary_child": {"nope": 1}}, ValueError, "no joint named 'nope'"),
        ({"primary_child": {0: 9}}, ValueError, "primary_child: joint index 9 is out of range"),
        ({"primary_child": "a"}, TypeError, "primary_child must be a mapping or a sequence"),
        ({"primary_child": {0: 1.5}}, TypeError, "primary_child: a joint is an int index or a str name"),
        ({"primary_child": {1: 3}}, ValueError, "primary_child: the bone from joint 1 to joint 3 has zero length"),
        ({"leaf_axis": [1, 0]}, ValueError, "leaf_axis must have shape (3,) or (4, 3)"),
        ({"leaf_axis": [0, 0, 0]}, ValueError, "leaf_axis is a zero vector for joint 2"),
        ({"leaf_axis": [np.nan, 0, 1]}, ValueError, "leaf_axis must be finite"),
        ({"leaf_axis": ["x", "y", "z"]}, TypeError, "leaf_axis must be a real numeric array"),
    ],
)
def test_override_errors_name_the_argument(kwargs, error, text):
    skeleton = fastkin.Skeleton([-1, 0, 1, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]], names=list("abcd"))
    with pytest.raises(error) as raised:
        fastkin.bone_frames(skeleton, **kwargs)
    assert text in str(raised.value)


# -- the forward map and the round trip -------------------------------------------------------


def test_rest_pose_gives_the_frames(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)), random_quaternions(rng, (24,)))
    bone = fastkin.local_to_bone_world(skeleton, skeleton.rest_pose())
    assert max_error(bone, fastkin.bone_frames(skeleton)) < 1e-14


@settings(max_examples=50, deadline=None)
@given(
    posed_skeletons(),
    st.sampled_from([(), (1,), (4,), (2, 3)]),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from(["quat", "matrix"]),
)
def test_round_trip_and_reference_on_random_skeletons(case, batch, dtype, form):
    skeleton, rng = case
    rotations = pose(rng, skeleton, batch, form, dtype)
    bone = fastkin.local_to_bone_world(skeleton, rotations)
    assert bone.dtype == dtype and bone.shape == batch + (skeleton.num_joints, 3, 3)
    frames = frames_of(skeleton)
    expected = bone_world_reference(skeleton.parents, skeleton.offsets, skeleton.rest_rotations, rotations, frames)
    assert_close(bone, expected, DEEP_TOLERANCE[dtype])
    local = fastkin.bone_world_to_local(skeleton, bone)
    assert local.dtype == dtype and local.shape == bone.shape
    assert_close(local, local_matrices(rotations, skeleton.num_joints), DEEP_TOLERANCE[dtype])
    if dtype == np.float64:  # the inverse alone, from the reference Q
        back = bone_local_reference(skeleton.parents, skeleton.offsets, skeleton.rest_rotations, expected, frames)
        assert_close(fastkin.bone_world_to_local(skeleton, expected), back, 1e-12)


@pytest.mark.parametrize("path", bvh_test_files(), ids=lambda p: p.name)
def test_round_trip_on_real_bvh_skeletons(path, rng):
    motion = load_motion(path)
    skeleton = motion.skeleton
    frames = np.linspace(0, len(motion) - 1, min(len(motion), 16)).astype(int)
    poses = np.concatenate([motion.rotations[frames], random_quaternions(rng, (16, skeleton.num_joints))])
    expected = local_matrices(poses, skeleton.num_joints)
    for dtype in (np.float64, np.float32):
        rotations = poses.astype(dtype)
        local = fastkin.bone_world_to_local(skeleton, fastkin.local_to_bone_world(skeleton, rotations))
        error = max_error(local, expected)
        assert error < TOLERANCE[dtype], f"{dtype.__name__} round trip error {error:.3g}"
    matrices = fastkin.bone_world_to_local(skeleton, fastkin.local_to_bone_world(skeleton, expected))
    assert max_error(matrices, expected) < 1e-12


# -- the bone direction against fk joint positions --------------------------------------------


def bone_direction_errors(skeleton, rotations):
    """Max error of Q's first column against bone directions from fk joint
    positions, (B, J, 4) rotations:
    - "child": joints with a primary child c, positions[c] - positions[j];
    - "leaf": leaves, positions[j] - positions[parent], in the poses where
      the leaf's local rotation is its rest rotation (its own rotation turns
      its bone but moves no joint);
    - "tip": every joint, towards a virtual child placed along its rest bone
      in its own frame (covers leaves in any pose and the x-axis fallback)."""
    parents = list(skeleton.parents)
    num_joints = len(parents)
    primary = primary_children_reference(parents, skeleton.offsets)
    first = fastkin.local_to_bone_world(skeleton, rotations)[..., 0]  # (B, J, 3)
    world_p = fastkin.fk_batch(skeleton, rotations)[1]
    errors = {}

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def error(actual, expected, mask=True):
        return float(np.max(np.where(mask, np.abs(actual - expected).max(-1), 0.0), initial=0.0))

    joints = [j for j in range(num_joints) if primary[j] >= 0]
    if joints:
        direction = unit(world_p[:, [primary[j] for j in joints]] - world_p[:, joints])
        errors["child"] = error(first[:, joints], direction)
    lengths = np.linalg.norm(skeleton.offsets, axis=1)
    longest = lengths[skeleton.parents >= 0].max(initial=0.0)
    leaves = [j for j in range(num_joints) if primary[j] < 0 and parents[j] >= 0 and lengths[j] > 1e-9 * longest]
    if leaves:
        local = local_matrices(rotations, num_joints)[:, leaves]
        rest = local_matrices(skeleton.rest_rotations, num_joints)[leaves]
        at_rest = np.abs(local - rest).max(axis=(-1, -2)) < 1e-15
        direction = unit(world_p[:, leaves] - world_p[:, [parents[j] for j in leaves]])
        errors["leaf"] = error(first[:, leaves], direction, at_rest)
    # Virtual tip j + J of joint j at local offset W0_jᵀ a_j (a_j: first column of A_j).
    rest_world = fastkin.fk_batch(skeleton, skeleton.rest_rotations)[0]
    tips = np.einsum("jba,jb->ja", rest_world, frames_of(skeleton)[:, :, 0])
    tipped = fastkin.Skeleton(parents + list(range(num_joints)), np.concatenate([skeleton.offsets, tips]))
    identity = np.broadcast_to([0.0, 0.0, 0.0, 1.0], rotations.shape)
    tip_p = fastkin.fk_batch(tipped, np.concatenate([rotations, identity], axis=-2))[1]
    errors["tip"] = error(first, unit(tip_p[:, num_joints:] - tip_p[:, :num_joints]))
    return errors


def leaves_at_rest(skeleton, rotations, poses):
    """rotations with every leaf at its rest rotation in the first `poses` poses."""
    leaves = [j for j in range(skeleton.num_joints) if not skeleton.children(j)]
    rotations[:poses, leaves] = skeleton.rest_rotations[leaves]
    return rotations


@settings(max_examples=40, deadline=None)
@given(posed_skeletons(max_joints=60))
def test_first_column_is_the_posed_bone_direction_on_random_skeletons(case):
    skeleton, rng = case
    rotations = leaves_at_rest(skeleton, random_quaternions(rng, (4, skeleton.num_joints)), 2)
    # Position differences lose digits when a bone is short next to the skeleton.
    lengths = np.linalg.norm(skeleton.offsets, axis=1)[skeleton.parents >= 0]
    shortest = lengths[lengths > 0].min(initial=1.0)
    reach = np.abs(fastkin.fk_batch(skeleton, rotations)[1]).max()
    for name, error in bone_direction_errors(skeleton, rotations).items():
        assert error < 1e-12 * max(1.0, reach / shortest), f"{name}: {error:.3g}"


@pytest.mark.parametrize("path", bvh_test_files(), ids=lambda p: p.name)
def test_first_column_is_the_posed_bone_direction_on_real_bvh(path, rng):
    skeleton = load_motion(path).skeleton
    rotations = leaves_at_rest(skeleton, random_quaternions(rng, (8, skeleton.num_joints)), 4)
    for name, error in bone_direction_errors(skeleton, rotations).items():
        assert error < 1e-12, f"{name}: {error:.3g}"


# -- arrays: frames argument, batches, threads, in/out conventions ------------------------------


def test_custom_frames_are_used_both_ways(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)), random_quaternions(rng, (24,)))
    frames = local_matrices(random_quaternions(rng, (24,)), 24)
    rotations = random_quaternions(rng, (5, 24))
    bone = fastkin.local_to_bone_world(skeleton, rotations, frames=frames)
    expected = bone_world_reference(skeleton.parents, skeleton.offsets, skeleton.rest_rotations, rotations, frames)
    assert_close(bone, expected, 1e-12)
    assert_close(fastkin.bone_world_to_local(skeleton, bone, frames=frames), local_matrices(rotations, 24), 1e-12)
    overridden = fastkin.bone_frames(skeleton, primary_child={0: 1})
    assert_close(fastkin.local_to_bone_world(skeleton, skeleton.rest_pose(), frames=overridden), overridden, 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_batch_threads_agree_with_single_thread(dtype, rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    rotations = random_quaternions(rng, (4001, 24)).astype(dtype)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        single = fastkin.local_to_bone_world(skeleton, rotations)
        single_back = fastkin.bone_world_to_local(skeleton, single)
        fastkin.set_num_threads(3)
        multi = fastkin.local_to_bone_world(skeleton, rotations)
        multi_back = fastkin.bone_world_to_local(skeleton, single)
    finally:
        fastkin.set_num_threads(before)
    np.testing.assert_array_equal(single, multi)
    np.testing.assert_array_equal(single_back, multi_back)
    assert_close(multi_back, local_matrices(rotations, 24), TOLERANCE[dtype])


def test_non_contiguous_and_list_inputs(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    bone = fastkin.local_to_bone_world(skeleton, random_quaternions(rng, (6, 24)))
    strided = np.swapaxes(np.swapaxes(bone, 0, 1).copy(), 0, 1)
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(
        fastkin.bone_world_to_local(skeleton, strided), fastkin.bone_world_to_local(skeleton, bone)
    )
    np.testing.assert_array_equal(
        fastkin.bone_world_to_local(skeleton, bone[0].tolist()), fastkin.bone_world_to_local(skeleton, bone[0])
    )


def test_empty_batch(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    bone = fastkin.local_to_bone_world(skeleton, np.zeros((0, 24, 4)))
    assert bone.shape == (0, 24, 3, 3)
    assert fastkin.bone_world_to_local(skeleton, bone).shape == (0, 24, 3, 3)


def test_input_is_left_untouched(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    bone = fastkin.local_to_bone_world(skeleton, random_quaternions(rng, (3, 24)))
    bone.setflags(write=False)
    before = bone.copy()
    fastkin.bone_world_to_local(skeleton, bone)
    np.testing.assert_array_equal(bone, before)
