"""fastkin.ik.analytic: real motion reproduced, twist recovered from a
reference, the slow scipy reference, degenerate cases, torch and threads."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import fastkin
from conftest import SMPL_PARENTS, shared_data
from fastkin.rotations import geodesic_angle, quat_to_matrix
from reference import analytic_ik_reference, fk_reference, random_quaternions
from test_bone_frames import posed_skeletons

MOTIONS = [
    shared_data() / "train" / "cmu-bvh" / "01_01.bvh",
    shared_data() / "test" / "bvh" / "pybvh_cmu_12_01_walk.bvh",
]

# Positions made by fk of the same skeleton are reproduced to this fraction
# of the skeleton's height (float64; measured ~1e-15).
EXACT = 1e-9
# Regression guards on the mean geodesic error to the true local rotations
# on the two motions (measured: all joints 13.6 and 12.9 degrees, non-leaf
# 16.7 and 15.8; docs/ik.md).
MEAN_ERROR_DEGREES = {"all": 15.0, "non-leaf": 18.0}


def only_child(skeleton):
    """(J,) True for joints whose parent has exactly one child."""
    parents = skeleton.parents
    counts = np.bincount(parents[parents >= 0], minlength=skeleton.num_joints)
    return np.array([p >= 0 and counts[p] == 1 for p in parents])


def leaves(skeleton):
    parents = skeleton.parents
    return np.bincount(parents[parents >= 0], minlength=skeleton.num_joints) == 0


def tree_roots(skeleton):
    """(J,) the root of each joint's tree."""
    roots = np.arange(skeleton.num_joints)
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            roots[j] = roots[p]
    return roots


def height(positions):
    """The largest extent of the joints' bounding box over all frames."""
    flat = positions.reshape(-1, 3)
    return float((flat.max(axis=0) - flat.min(axis=0)).max())


def every_tenth_frame(path):
    if not path.exists():
        pytest.skip(f"{path} not found (set FASTKIN_SHARED_DATA)")
    with warnings.catch_warnings():  # some files have a wrong frame count in the header
        warnings.simplefilter("ignore")
        return fastkin.io.load_bvh(path)[::10]


def reproduce(skeleton, rotations, root_translation):
    return fastkin.fk_batch(skeleton, rotations, root_translation)[1]


# -- real motion --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MOTIONS, ids=lambda p: p.name)
def test_real_motion_positions_are_reproduced(path):
    motion = every_tenth_frame(path)
    skeleton = motion.skeleton
    positions = motion.positions()  # fk of the true pose
    scale = height(positions)
    rotations, root_translation = fastkin.ik.analytic(skeleton, positions)
    assert rotations.shape == positions.shape[:-1] + (3, 3) and rotations.dtype == np.float64
    error = np.linalg.norm(reproduce(skeleton, rotations, root_translation) - positions, axis=-1) / scale
    single = only_child(skeleton)
    assert error[:, single].max() <= EXACT
    # Children of joints with several children: a best fit, exact for positions made by fk.
    assert error.max() <= EXACT
    true_rotations = quat_to_matrix(motion.rotations)
    angle = np.degrees(geodesic_angle(rotations, true_rotations))
    mean_all, mean_inner = float(angle.mean()), float(angle[:, ~leaves(skeleton)].mean())
    print(
        f"\n{path.name}: {len(motion)} frames, max position error / height: single-child "
        f"{error[:, single].max():.2e}, children of multi-child joints {error[:, ~single].max():.2e}; "
        f"mean geodesic error to the true local rotations: all {mean_all:.2f} deg, non-leaf {mean_inner:.2f} deg"
    )
    assert mean_all <= MEAN_ERROR_DEGREES["all"] and mean_inner <= MEAN_ERROR_DEGREES["non-leaf"]


@pytest.mark.parametrize("path", MOTIONS, ids=lambda p: p.name)
def test_real_motion_with_the_true_reference_gives_the_true_rotations(path):
    motion = every_tenth_frame(path)
    skeleton, positions = motion.skeleton, motion.positions()
    true_rotations = quat_to_matrix(motion.rotations)
    for reference in (motion.rotations, true_rotations):
        rotations, root_translation = fastkin.ik.analytic(skeleton, positions, reference=reference)
        assert geodesic_angle(rotations, true_rotations).max() <= 1e-9
        np.testing.assert_allclose(root_translation, motion.root_translation, atol=1e-9 * height(positions))


@pytest.mark.parametrize("path", MOTIONS[:1], ids=lambda p: p.name)
def test_real_motion_in_float32(path):
    motion = every_tenth_frame(path)
    skeleton, positions = motion.skeleton, motion.positions()
    rotations, root_translation = fastkin.ik.analytic(skeleton, positions.astype(np.float32))
    assert rotations.dtype == np.float32 and root_translation.dtype == np.float32
    reproduced = reproduce(skeleton, rotations.astype(np.float64), root_translation.astype(np.float64))
    assert np.abs(reproduced - positions).max() <= 1e-5 * height(positions)
    gram = np.swapaxes(rotations, -1, -2) @ rotations
    assert np.abs(gram - np.eye(3)).max() <= 1e-6


def test_joints_with_only_zero_length_children_aim_with_their_grandchildren():
    #  0 -> 1 (zero) -> 2,   0 -> 3 (zero) -> 4: joint 0 looks through 1 and 3.
    #  5 -> 6 (zero) -> 7,   5 -> 8: joint 5 has a real child and aims with it only.
    parents = [-1, 0, 1, 0, 3, -1, 5, 6, 5]
    offsets = [[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [5, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]]
    skeleton = fastkin.Skeleton(parents, offsets)
    plan = importlib.import_module("fastkin.ik.analytic")._plan(skeleton)
    assert plan.targets == [(2, 4), (2,), (), (4,), (), (8,), (7,), (), ()]
    # The look-through fixes joint 0's full rotation from positions alone.
    turn = fastkin.rotations.axis_angle_to_matrix(np.array([0.3, -1.1, 0.7]))
    pose = np.tile(np.eye(3), (9, 1, 1))
    pose[0] = turn
    rotations, _ = fastkin.ik.analytic(skeleton, fastkin.fk_batch(skeleton, pose)[1])
    np.testing.assert_allclose(rotations, pose, atol=1e-14)


# -- random skeletons and poses -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(posed_skeletons(max_joints=60), st.sampled_from([(), (1,), (9,), (2, 5)]), st.booleans())
def test_random_poses_are_reproduced(case, batch, with_root):
    skeleton, rng = case
    quats = random_quaternions(rng, batch + (skeleton.num_joints,))
    root = rng.normal(size=batch + (3,)) * 10 if with_root else None
    positions = fastkin.fk_batch(skeleton, quats, root)[1]
    rotations, root_translation = fastkin.ik.analytic(skeleton, positions)
    assert rotations.shape == batch + (skeleton.num_joints, 3, 3) and root_translation.shape == batch + (3,)
    reproduced = reproduce(skeleton, rotations, root_translation)
    scale = max(1.0, height(positions))
    # fk adds the first root's translation to every root of a forest: each
    # tree is reproduced relative to its root, the first tree in place.
    roots = tree_roots(skeleton)
    relative = (reproduced - reproduced[..., roots, :]) - (positions - positions[..., roots, :])
    assert np.abs(relative).max(initial=0.0) <= EXACT * scale
    first_tree = roots == skeleton.roots[0]
    assert np.abs(reproduced[..., first_tree, :] - positions[..., first_tree, :]).max() <= EXACT * scale


@settings(max_examples=60, deadline=None)
@given(posed_skeletons(max_joints=60), st.sampled_from(["quat", "matrix"]), st.booleans())
def test_the_true_reference_is_recovered_twist_and_all(case, form, shared):
    skeleton, rng = case
    quats = random_quaternions(rng, (4, skeleton.num_joints))
    if shared:  # one reference for every frame: the frames differ by their root translation
        quats[:] = quats[0]
    positions = fastkin.fk_batch(skeleton, quats, rng.normal(size=(4, 3)))[1]
    reference = quats if form == "quat" else quat_to_matrix(quats)
    rotations, _ = fastkin.ik.analytic(skeleton, positions, reference=reference[0] if shared else reference)
    assert geodesic_angle(rotations, quat_to_matrix(quats)).max() <= 1e-9


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 80), st.integers(0, 2**31 - 1))
def test_chains_point_every_bone_exactly_at_noisy_targets(num_joints, seed):
    rng = np.random.default_rng(seed)
    skeleton = fastkin.Skeleton(
        np.arange(num_joints) - 1, rng.normal(size=(num_joints, 3)), random_quaternions(rng, (num_joints,))
    )
    # Keypoints that no pose of the skeleton reaches (bone lengths change).
    positions = fastkin.fk_batch(skeleton, random_quaternions(rng, (6, num_joints)))[1]
    positions = positions + rng.normal(size=positions.shape) * 0.3
    reproduced = reproduce(skeleton, *fastkin.ik.analytic(skeleton, positions))
    wanted = np.diff(positions, axis=-2)
    got = np.diff(reproduced, axis=-2)
    cosine = np.sum(wanted * got, -1) / np.linalg.norm(wanted, axis=-1) / np.linalg.norm(got, axis=-1)
    assert np.abs(cosine - 1.0).max() <= 1e-12


# -- against the slow reference -----------------------------------------------------------------


def reference_cases():
    rng = np.random.default_rng(7)
    smpl = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)), random_quaternions(rng, (24,)))
    cmu = every_tenth_frame(MOTIONS[1]).skeleton if MOTIONS[1].exists() else smpl
    tree = fastkin.Skeleton(
        [-1] + [int(rng.integers(0, j)) for j in range(1, 40)], rng.normal(size=(40, 3)), random_quaternions(rng, (40,))
    )
    return {"smpl": smpl, "cmu": cmu, "tree": tree}


@pytest.mark.parametrize("name", ["smpl", "cmu", "tree"])
@pytest.mark.parametrize("with_reference", [False, True])
def test_matches_the_scipy_reference(name, with_reference, rng):
    skeleton = reference_cases()[name]
    num_joints = skeleton.num_joints
    quats = random_quaternions(rng, (13, num_joints))  # 13 frames: a block of 8 and 5 single ones
    positions = fastkin.fk_batch(skeleton, quats, rng.normal(size=(13, 3)))[1]
    scale = height(positions)
    positions = positions + rng.normal(size=positions.shape) * 0.05 * scale  # makes every fit a real one
    reference = random_quaternions(rng, (13, num_joints)) if with_reference else None
    expected_rotations, expected_root = analytic_ik_reference(
        skeleton.parents, skeleton.offsets, skeleton.rest_rotations, positions, reference
    )
    rotations, root_translation = fastkin.ik.analytic(skeleton, positions, reference=reference)
    assert np.abs(rotations - expected_rotations).max() <= 1e-9
    np.testing.assert_allclose(root_translation, expected_root, atol=1e-12 * scale)


def test_best_fits_reach_the_least_squares_optimum():
    # A root with 2-4 children, against scipy's Kabsch on the objective
    # Σ |D a - b|², including the hard cases: exactly collinear vectors (the
    # eigenvalue is double), nearly collinear ones, and children whose turns
    # nearly cancel (the eigenvalue is far below its starting bound).
    rng = np.random.default_rng(11)
    worst = 0.0
    for trial in range(400):
        k = int(rng.integers(2, 5))
        base = rng.normal(size=3)
        kind = trial % 4
        if kind == 0:  # collinear rest vectors and targets
            a = np.outer(rng.uniform(-2, 2, k), base)
            b = np.outer(rng.uniform(-2, 2, k), rng.normal(size=3))
        elif kind == 1:  # nearly collinear, consistent up to noise
            a = np.outer(rng.uniform(-2, 2, k), base) + rng.normal(size=(k, 3)) * 10.0 ** rng.uniform(-12, 0)
            b = a @ quat_to_matrix(random_quaternions(rng, ())).T + rng.normal(size=(k, 3)) * 10.0 ** rng.uniform(
                -14, 0
            )
        elif kind == 2:  # turns that nearly cancel
            a = np.tile(base, (k, 1)) + rng.normal(size=(k, 3)) * 1e-4
            b = np.tile(rng.normal(size=3), (k, 1)) * np.where(np.arange(k) % 2, 1.0, -1.0)[:, None]
        else:
            a, b = rng.normal(size=(k, 3)), rng.normal(size=(k, 3))
        skeleton = fastkin.Skeleton([-1] + [0] * k, np.vstack([np.zeros(3), a]))
        rotation = fastkin.ik.analytic(skeleton, np.vstack([np.zeros(3), b]))[0][0]
        with warnings.catch_warnings():  # scipy warns that degenerate fits are not unique
            warnings.simplefilter("ignore")
            optimum = Rotation.align_vectors(b, a)[0].as_matrix()
        excess = np.sum((a @ rotation.T - b) ** 2) - np.sum((a @ optimum.T - b) ** 2)
        worst = max(worst, excess / np.sum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    # Exact but where vectors are collinear to < 1e-7: there the rotation about
    # their line is left to the start (within ~1e-7 of the optimum).
    assert worst <= 1e-6


# -- degenerate cases ---------------------------------------------------------------------------

ARM = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])


def test_a_half_turn_is_deterministic_and_exact():
    positions = np.array([[0.0, 0, 0], [-1, 0, 0], [-2, 0, 0]])
    rotations, root_translation = fastkin.ik.analytic(ARM, positions)
    # About the axis of the frame least aligned with the bone (y), crossed with it: z.
    np.testing.assert_array_equal(rotations[0], np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(rotations[1], np.eye(3))
    again = fastkin.ik.analytic(ARM, positions)[0]
    np.testing.assert_array_equal(again, rotations)
    np.testing.assert_allclose(reproduce(ARM, rotations, root_translation), positions, atol=1e-15)


@pytest.mark.parametrize("offset", [0.0, 1e-300, 1e-12, 1e-7, 1e-4, 1e-2])
def test_nearly_opposite_directions_stay_exact(offset):
    # The elbow swings by pi - offset: the lane fix-up and its correcting swing.
    positions = np.array([[0.0, 0, 0], [-1, offset, 0], [-1, offset, 1]])
    rotations, root_translation = fastkin.ik.analytic(ARM, positions)
    assert np.isfinite(rotations).all()
    direction = reproduce(ARM, rotations, root_translation)
    unit = positions / np.maximum(np.linalg.norm(positions, axis=-1, keepdims=True), 1e-300)
    assert np.abs(direction[1] - unit[1]).max() <= 2e-15
    np.testing.assert_allclose(direction[2], direction[1] + [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(geodesic_angle(np.eye(3), rotations[0]), np.pi - np.arctan(offset), atol=1e-12)


def test_lanes_of_a_block_match_single_frames(rng):
    # 8-frame blocks run the common case in vector form and fix up rare lanes;
    # single frames run the same code one lane wide.
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (16, 24))
    axis = np.cross(skeleton.offsets[4], [0.0, 0.0, 1.0])
    axis /= np.linalg.norm(axis)
    quats[5, 1] = fastkin.rotations.axis_angle_to_quat(np.pi * axis)  # joint 1 swings by a half turn
    quats[6, 1] = fastkin.rotations.axis_angle_to_quat((np.pi - 1e-9) * axis)  # almost
    positions = fastkin.fk_batch(skeleton, quats)[1]
    positions[3, 4] = positions[3, 1]  # a coincident target
    together = fastkin.ik.analytic(skeleton, positions)[0]
    alone = np.stack([fastkin.ik.analytic(skeleton, p)[0] for p in positions])
    np.testing.assert_allclose(together, alone, atol=1e-13)
    # 1e-9 short of a half turn the minimal swing is the true rotation, but its
    # axis is fixed only to ~ (rounding of the positions) / 1e-9.
    assert geodesic_angle(together[6, 1], quat_to_matrix(quats[6, 1])) <= 1e-5
    reproduced = reproduce(skeleton, together[6], positions[6, 0] - skeleton.offsets[0])
    np.testing.assert_allclose(reproduced, positions[6], atol=1e-13)


def test_coincident_targets_keep_the_start():
    positions = np.zeros((3, 3))
    rotations, root_translation = fastkin.ik.analytic(ARM, positions)
    np.testing.assert_array_equal(rotations, np.tile(np.eye(3), (3, 1, 1)))
    rest = fastkin.rotations.axis_angle_to_quat(np.array([[0, 0, 0.5], [0.2, 0, 0], [0, 0.3, 0]]))
    skeleton = fastkin.Skeleton(ARM.parents, ARM.offsets, rest)
    np.testing.assert_allclose(fastkin.ik.analytic(skeleton, positions)[0], quat_to_matrix(rest), atol=1e-15)
    reference = random_quaternions(np.random.default_rng(3), (3,))
    expected = fk_reference(ARM.parents, ARM.offsets, reference)[0]
    world = fastkin.fk_batch(ARM, fastkin.ik.analytic(ARM, positions, reference=reference)[0])[0]
    np.testing.assert_allclose(world, expected, atol=1e-14)  # the reference's world rotations


def test_zero_length_bones_and_collinear_children():
    #  0 -> 1 (zero length) -> 2;  2 -> 3 and 2 -> 4 along the same line.
    skeleton = fastkin.Skeleton([-1, 0, 1, 2, 2], [[0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0], [2, 0, 0]])
    rng = np.random.default_rng(5)
    positions = fastkin.fk_batch(skeleton, random_quaternions(rng, (10, 5)))[1]
    rotations, root_translation = fastkin.ik.analytic(skeleton, positions)
    assert np.isfinite(rotations).all()
    np.testing.assert_allclose(reproduce(skeleton, rotations, root_translation), positions, atol=1e-14)
    # Collinear children fix only the direction: the swing from the start, as for one child.
    line = fastkin.Skeleton([-1, 0, 1, 1], [[0, 0, 0], [0, 1, 0], [1, 0, 0], [2, 0, 0]])
    single = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, 1, 0], [1, 0, 0]])
    target = np.array([[0.0, 0, 0], [0, 1, 0], [1, 1, 1]])
    both = fastkin.ik.analytic(line, np.vstack([target, 2 * target[2] - target[1]]))[0]
    np.testing.assert_allclose(both[:3], fastkin.ik.analytic(single, target)[0], atol=1e-15)


def test_degenerate_poses_are_finite_and_deterministic(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    cases = [
        np.zeros((24, 3)),  # everything at one point
        np.tile(np.arange(24.0)[:, None], (1, 3)),  # all on one line
        np.where(np.arange(24)[:, None] % 2 == 0, 1.0, -1.0) * [1, 0, 0],  # back and forth
    ]
    for positions in cases:
        rotations, root_translation = fastkin.ik.analytic(skeleton, positions)
        assert np.isfinite(rotations).all() and np.isfinite(root_translation).all()
        assert np.abs(np.swapaxes(rotations, -1, -2) @ rotations - np.eye(3)).max() <= 1e-14
        np.testing.assert_array_equal(fastkin.ik.analytic(skeleton, positions)[0], rotations)


# -- inputs and front doors ---------------------------------------------------------------------


def test_batch_shapes_references_and_layouts(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (2, 3, 24))
    positions = fastkin.fk_batch(skeleton, quats)[1]
    rotations, root = fastkin.ik.analytic(skeleton, positions)
    assert rotations.shape == (2, 3, 24, 3, 3) and root.shape == (2, 3, 3)
    flat = fastkin.ik.analytic(skeleton, positions.reshape(6, 24, 3))[0]
    np.testing.assert_array_equal(flat.reshape(rotations.shape), rotations)
    single, single_root = fastkin.ik.analytic(skeleton, positions[1, 2])
    assert single.shape == (24, 3, 3) and single_root.shape == (3,)
    np.testing.assert_allclose(single, rotations[1, 2], atol=1e-14)
    # A strided array and nested lists give the same answer.
    wide = np.zeros((2, 3, 24, 6))
    wide[..., ::2] = positions
    np.testing.assert_array_equal(fastkin.ik.analytic(skeleton, wide[..., ::2])[0], rotations)
    np.testing.assert_array_equal(fastkin.ik.analytic(skeleton, positions[0, 0].tolist())[0], rotations[0, 0])
    # One reference for all frames equals it repeated per frame.
    reference = random_quaternions(rng, (24,))
    shared = fastkin.ik.analytic(skeleton, positions, reference=reference)[0]
    repeated = fastkin.ik.analytic(skeleton, positions, reference=np.broadcast_to(reference, (2, 3, 24, 4)))[0]
    np.testing.assert_array_equal(shared, repeated)
    assert fastkin.ik.analytic(skeleton, np.zeros((0, 24, 3)))[0].shape == (0, 24, 3, 3)


def test_threads_give_the_serial_answer(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    positions = fastkin.fk_batch(skeleton, random_quaternions(rng, (5003, 24)))[1]
    reference = random_quaternions(rng, (5003, 24))
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        serial = [fastkin.ik.analytic(skeleton, positions, reference=r)[0] for r in (None, reference)]
        fastkin.set_num_threads(2)
        threaded = [fastkin.ik.analytic(skeleton, positions, reference=r)[0] for r in (None, reference)]
    finally:
        fastkin.set_num_threads(before)
    for a, b in zip(serial, threaded):
        np.testing.assert_allclose(a, b, atol=1e-13)


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_every_instruction_set_path_matches_the_reference(isa, tmp_path):
    """Each compiled solver (capped with FASTKIN_ISA; AVX-512 CPUs run the
    AVX2 one) against the scipy reference, with and without a reference pose."""
    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np, fastkin, sys\n"
        "data = np.load(sys.argv[1])\n"
        "sk = fastkin.Skeleton(data['parents'], data['offsets'], data['rest'])\n"
        "out = {'isa': fastkin.build_info()['isa']}\n"
        "out['plain'] = fastkin.ik.analytic(sk, data['positions'])[0]\n"
        "out['f32'] = fastkin.ik.analytic(sk, data['positions'].astype(np.float32))[0]\n"
        "out['referenced'] = fastkin.ik.analytic(sk, data['positions'], reference=data['reference'])[0]\n"
        "np.savez(sys.argv[2], **out)\n"
    )
    rng = np.random.default_rng(4)
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)), random_quaternions(rng, (24,)))
    positions = fastkin.fk_batch(skeleton, random_quaternions(rng, (21, 24)))[1] + rng.normal(size=(21, 24, 3)) * 0.1
    reference = random_quaternions(rng, (21, 24))
    inputs, outputs = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(
        inputs,
        parents=skeleton.parents,
        offsets=skeleton.offsets,
        rest=skeleton.rest_rotations,
        positions=positions,
        reference=reference,
    )
    env = dict(os.environ, FASTKIN_ISA=isa)
    subprocess.run([sys.executable, str(script), str(inputs), str(outputs)], check=True, env=env)
    result = np.load(outputs)
    if str(result["isa"]) != isa and not (isa == "avx2" and str(result["isa"]) == "avx512"):
        pytest.skip(f"this CPU does not support {isa}")
    args = (skeleton.parents, skeleton.offsets, skeleton.rest_rotations, positions)
    assert np.abs(result["plain"] - analytic_ik_reference(*args)[0]).max() <= 1e-9
    assert np.abs(result["referenced"] - analytic_ik_reference(*args, reference)[0]).max() <= 1e-9
    assert np.abs(result["f32"] - result["plain"]).max() <= 1e-5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_tensors_in_tensors_out(dtype, rng):
    torch = pytest.importorskip("torch")
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)))
    quats = random_quaternions(rng, (5, 24)).astype(dtype)
    positions = fastkin.fk_batch(skeleton, quats)[1]
    tensor = torch.tensor(positions, requires_grad=True)
    rotations, root_translation = fastkin.ik.analytic(skeleton, tensor, reference=torch.from_numpy(quats))
    assert isinstance(rotations, torch.Tensor) and rotations.dtype == tensor.dtype
    assert rotations.device == tensor.device and not rotations.requires_grad
    expected = fastkin.ik.analytic(skeleton, positions, reference=quats)
    np.testing.assert_array_equal(rotations.numpy(), expected[0])
    np.testing.assert_array_equal(root_translation.numpy(), expected[1])
    with pytest.raises(TypeError, match="positions must be float32 or float64"):
        fastkin.ik.analytic(skeleton, tensor.detach().to(torch.bfloat16))
    with pytest.raises(TypeError, match="reference has dtype"):
        fastkin.ik.analytic(skeleton, tensor, reference=torch.zeros(24, 4, dtype=torch.float16))
