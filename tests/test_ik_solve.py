"""fastkin.ik.solve / solve_sequence: exact recovery of real motion from
its own joint positions, partial and orientation targets, noise, limits,
unreachable targets; the result is always checked through fk_batch."""

from __future__ import annotations

import numpy as np
import pytest

import fastkin
from conftest import SMPL_PARENTS, shared_data

REAL_MOTIONS = [("train/cmu-bvh/01_01.bvh"), ("test/bvh/pybvh_cmu_12_01_walk.bvh")]


def height(skeleton: fastkin.Skeleton) -> float:
    rest = fastkin.fk_batch(skeleton, skeleton.rest_rotations)[1]
    return float(np.ptp(rest, axis=0).max())


def real_motion(name: str) -> fastkin.Motion:
    path = shared_data() / name
    if not path.is_file():
        pytest.skip(f"{path} not found (set FASTKIN_SHARED_DATA)")
    return fastkin.io.load_bvh(path)[::10]


def smpl_like(rng, scale=0.1):
    return fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)) * scale)


def random_pose(rng, batch, num_joints, max_angle=1.0):
    axis_angle = rng.uniform(-1, 1, size=batch + (num_joints, 3))
    axis_angle *= max_angle / np.maximum(1.0, np.linalg.norm(axis_angle, axis=-1, keepdims=True))
    return fastkin.rotations.axis_angle_to_quat(axis_angle)


@pytest.mark.parametrize("name", REAL_MOTIONS)
def test_solve_recovers_real_motion_from_its_positions(name):
    motion = real_motion(name)
    skeleton = motion.skeleton
    targets = motion.positions()
    result = fastkin.ik.solve(skeleton, targets)  # rest pose as the start
    tolerance = 1e-6 * height(skeleton)
    within = result.error < tolerance
    assert within.mean() >= 0.99, f"{within.mean():.3f} of frames within 1e-6 of the height"
    assert result.converged.all()
    # The error reported is the error fk_batch sees.
    posed = fastkin.fk_batch(skeleton, result.rotations, result.root_translation)[1]
    np.testing.assert_allclose(np.linalg.norm(posed - targets, axis=-1).max(axis=-1), result.error, atol=1e-12)
    print(f"{name}: {len(targets)} frames, median {np.median(result.iterations):.0f} iterations")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_end_effectors_only_with_a_fixed_root(dtype, rng):
    skeleton = smpl_like(rng)
    truth = random_pose(rng, (20,), 24, max_angle=0.6)
    _, positions = fastkin.fk_batch(skeleton, truth)
    ends = [10, 11, 15, 22, 23]  # feet, head, hands
    result = fastkin.ik.solve(skeleton, positions[:, ends].astype(dtype), joints=ends, fixed_root=True)
    assert result.rotations.dtype == dtype
    posed = fastkin.fk_batch(skeleton, result.rotations.astype(np.float64))[1][:, ends]
    tolerance = (1e-8 if dtype == np.float64 else 1e-4) * height(skeleton)
    assert np.abs(posed - positions[:, ends]).max() < tolerance
    assert result.converged.all()


def test_joint_names_weights_and_torch(rng):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)) * 0.1, names=[f"j{i}" for i in range(24)])
    _, positions = fastkin.fk_batch(skeleton, random_pose(rng, (3,), 24))
    by_name = fastkin.ik.solve(skeleton, positions[:, [22, 23]], joints=["j22", "j23"], weights=[1.0, 2.0])
    torch = pytest.importorskip("torch")
    as_tensor = fastkin.ik.solve(skeleton, torch.tensor(positions[:, [22, 23]]), joints=[22, 23], weights=[1.0, 2.0])
    assert isinstance(as_tensor.rotations, torch.Tensor)
    np.testing.assert_allclose(as_tensor.rotations.numpy(), by_name.rotations)


def test_orientation_targets_fix_the_twist(rng):
    skeleton = smpl_like(rng)
    truth = random_pose(rng, (5,), 24)
    world_rotations, positions = fastkin.fk_batch(skeleton, truth, rng.normal(size=(5, 3)))
    result = fastkin.ik.solve(skeleton, positions, orientation_targets=world_rotations)
    assert result.converged.all() and result.error.max() < 1e-8 * height(skeleton)
    solved_world = fastkin.fk_batch(skeleton, result.rotations, result.root_translation)[0]
    np.testing.assert_allclose(solved_world, world_rotations, atol=1e-7)
    angle = fastkin.rotations.geodesic_angle(
        fastkin.rotations.quat_to_matrix(result.rotations), fastkin.rotations.quat_to_matrix(truth)
    )
    assert angle.max() < 1e-6


@pytest.mark.parametrize("noise", [0.005, 0.02])
@pytest.mark.parametrize("robust", [None, 0.01])
def test_noisy_targets_stay_finite_and_close(noise, robust, rng):
    skeleton = smpl_like(rng)
    size = height(skeleton)
    _, positions = fastkin.fk_batch(skeleton, random_pose(rng, (30,), 24), rng.normal(size=(30, 3)))
    noisy = positions + rng.normal(scale=noise * size, size=positions.shape)
    result = fastkin.ik.solve(skeleton, noisy, robust=None if robust is None else robust * size)
    assert np.isfinite(result.rotations).all() and np.isfinite(result.root_translation).all()
    posed = fastkin.fk_batch(skeleton, result.rotations, result.root_translation)[1]
    # The fit stays within a few noise levels of the clean positions.
    assert np.linalg.norm(posed - positions, axis=-1).mean() < 3 * noise * size
    assert result.converged.mean() >= (0.95 if robust is None else 0.85)  # Huber (IRLS) converges more slowly


def test_unreachable_target_stretches_towards_it():
    arm = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    result = fastkin.ik.solve(arm, [[0.0, 5.0, 0.0]], joints=[2], fixed_root=True)
    tip = fastkin.fk_batch(arm, result.rotations)[1][2]
    np.testing.assert_allclose(tip, [0.0, 2.0, 0.0], atol=1e-5)
    assert bool(result.converged) and abs(float(result.error) - 3.0) < 1e-5


def test_regularization_and_limits_hold_the_pose(rng):
    skeleton = smpl_like(rng)
    _, positions = fastkin.fk_batch(skeleton, random_pose(rng, (4,), 24))
    held = fastkin.ik.solve(
        skeleton, positions, regularization=1e8, fixed_root=True, init_root=positions[:, 0] - skeleton.offsets[0]
    )
    assert fastkin.rotations.geodesic_angle(fastkin.rotations.quat_to_matrix(held.rotations), np.eye(3)).max() < 1e-3
    box = np.zeros((24, 3, 2))
    box[:, :, 0], box[:, :, 1] = -0.1, 0.1
    limited = fastkin.ik.solve(skeleton, positions, joint_limits=box)
    relative = fastkin.rotations.quat_to_axis_angle(limited.rotations)
    assert np.abs(relative).max() <= 0.1 + 1e-9


def test_solve_sequence_follows_a_motion():
    motion = real_motion("test/bvh/pybvh_cmu_12_01_walk.bvh")
    targets = motion.positions()
    smooth = fastkin.ik.solve_sequence(motion.skeleton, targets, smoothness=1e-6)
    assert smooth.converged.all()
    assert smooth.error.max() < 1e-4 * height(motion.skeleton)  # the pull costs a little accuracy
    # Without the pull, warm starts reach the exact fit in fewer iterations than cold ones.
    warm = fastkin.ik.solve_sequence(motion.skeleton, targets, smoothness=0.0)
    cold = fastkin.ik.solve(motion.skeleton, targets)
    assert warm.error.max() < 1e-6 * height(motion.skeleton)
    assert np.median(warm.iterations[1:]) < np.median(cold.iterations)


def test_batch_shapes_and_shared_init(rng):
    skeleton = smpl_like(rng)
    truth = random_pose(rng, (2, 3), 24)
    _, positions = fastkin.fk_batch(skeleton, truth)
    shaped = fastkin.ik.solve(skeleton, positions, init=truth[0, 0])
    assert shaped.rotations.shape == (2, 3, 24, 4) and shaped.error.shape == (2, 3)
    flat = fastkin.ik.solve(skeleton, positions.reshape(6, 24, 3), init=truth[0, 0])
    np.testing.assert_array_equal(shaped.rotations.reshape(6, 24, 4), flat.rotations)
    started = fastkin.ik.solve(skeleton, positions, init=truth, init_root=np.zeros((2, 3, 3)))
    assert (started.iterations == 0).all()  # the start is the answer


def test_threads_give_the_same_answer(rng):
    skeleton = smpl_like(rng)
    _, positions = fastkin.fk_batch(skeleton, random_pose(rng, (64,), 24))
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        single = fastkin.ik.solve(skeleton, positions)
        fastkin.set_num_threads(2)
        pooled = fastkin.ik.solve(skeleton, positions)
    finally:
        fastkin.set_num_threads(before)
    np.testing.assert_array_equal(single.rotations, pooled.rotations)
    np.testing.assert_array_equal(single.iterations, pooled.iterations)


def test_free_rotations_keep_the_start(rng):
    """Rotations the targets leave free come back as started: a joint with
    no target below it, the twist of a joint with one bone below it, and the
    share of a joint whose only child sits on it (a zero-length bone)."""
    #   0 root -> 1 -> 2 (on 1) -> 3 -> 4 (untargeted leaf)
    offsets = [[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0.5, 0, 0]]
    skeleton = fastkin.Skeleton([-1, 0, 1, 2, 3], offsets)
    truth = random_pose(rng, (4,), 5)
    targets = fastkin.fk_batch(skeleton, truth)[1][:, :4]
    result = fastkin.ik.solve(skeleton, targets, joints=[0, 1, 2, 3])
    assert result.converged.all() and result.error.max() < 1e-9
    posed = fastkin.fk_batch(skeleton, result.rotations, result.root_translation)[1]
    np.testing.assert_allclose(posed[:, :4], targets, atol=1e-9)
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    for joint in (2, 4):  # the zero-length joint keeps its start; so does the untargeted leaf
        np.testing.assert_allclose(np.abs(result.rotations[:, joint] @ identity), 1.0, atol=1e-9)
