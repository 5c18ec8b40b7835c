"""fastkin.ik.two_bone, two_bone_skeleton and fabrik: targets reached, bone
lengths kept, closest poses for unreachable targets, the bend-plane rules,
degenerate limbs, references, threads and the torch front door."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastkin
from conftest import SMPL_PARENTS
from reference import fabrik_reference, random_quaternions, two_bone_reference

two_bone = fastkin.ik.two_bone
fabrik = fastkin.ik.fabrik

# SMPL-like body: head, wrists and ankles as end effectors (the hands below
# the wrists lead to no target and follow rigidly).
BODY_TARGETS = [15, 20, 21, 7, 8]


def norm(x):
    return np.linalg.norm(x, axis=-1)


def random_limbs(rng, n, scale=1.0):
    """n random limbs (root, mid, end) and targets spread over, inside and
    beyond their reach, and poles."""
    root = rng.normal(size=(n, 3)) * scale
    mid = root + rng.normal(size=(n, 3)) * scale * rng.uniform(0.2, 2.0, size=(n, 1))
    end = mid + rng.normal(size=(n, 3)) * scale * rng.uniform(0.2, 2.0, size=(n, 1))
    reach = norm(mid - root) + norm(end - mid)
    direction = rng.normal(size=(n, 3))
    direction /= norm(direction)[:, None]
    target = root + direction * (reach * rng.uniform(0.0, 1.3, size=n))[:, None]
    pole = root + rng.normal(size=(n, 3)) * scale * 2
    return root, mid, end, target, pole


def reachable(root, mid, end, target, margin=0.0):
    l1, l2, d = norm(mid - root), norm(end - mid), norm(target - root)
    return (d >= abs(l1 - l2) + margin * (l1 + l2)) & (d <= (1 - margin) * (l1 + l2))


# -- two_bone -------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_pole", [False, True])
def test_two_bone_reaches_keeps_lengths_and_returns_the_closest_pose(rng, with_pole):
    root, mid, end, target, pole = random_limbs(rng, 5000)
    new_mid, new_end = two_bone(root, mid, end, target, pole if with_pole else None)
    l1, l2 = norm(mid - root), norm(end - mid)
    chain = l1 + l2
    assert np.all(np.abs(norm(new_mid - root) - l1) <= 1e-9 * chain)
    assert np.all(np.abs(norm(new_end - new_mid) - l2) <= 1e-9 * chain)
    ok = reachable(root, mid, end, target)
    assert 1000 < ok.sum() < 4900
    assert np.all(norm(new_end - target)[ok] <= 1e-6 * chain[ok])
    # Unreachable: on the ray from the root to the target, stretched or folded.
    distance = norm(target - root)
    closest = np.clip(distance, np.abs(l1 - l2), chain)
    expected_end = root + (target - root) / distance[:, None] * closest[:, None]
    assert np.all(norm(new_end - expected_end)[~ok] <= 1e-9 * chain[~ok])
    assert np.any(distance > chain) and np.any(distance < np.abs(l1 - l2))


def test_two_bone_bends_towards_the_pole(rng):
    root, mid, end, target, pole = random_limbs(rng, 3000)
    new_mid, new_end = two_bone(root, mid, end, target, pole)
    u = (target - root) / norm(target - root)[:, None]
    to_pole = pole - root
    pole_side = to_pole - np.sum(to_pole * u, axis=1, keepdims=True) * u
    to_mid = new_mid - root
    mid_side = to_mid - np.sum(to_mid * u, axis=1, keepdims=True) * u
    bent = norm(mid_side) > 1e-6 * norm(to_mid)
    assert bent.sum() > 1000
    # On the pole's side of the root-target line, in the plane holding the pole.
    assert np.all(np.sum(mid_side * pole_side, axis=1)[bent] > 0)
    plane = np.linalg.det(np.stack([to_mid, u, to_pole / norm(to_pole)[:, None]], axis=1))
    assert np.all(np.abs(plane) <= 1e-9 * norm(to_mid))


def test_two_bone_keeps_the_current_bend_plane(rng):
    root, mid, end, _, _ = random_limbs(rng, 2000)
    normal = np.cross(mid - root, end - root)
    # A target in the current plane: the limb stays in it and bends the same
    # way (the triangle root-mid-end keeps its orientation).
    a, b = rng.normal(size=(2, 2000, 1))
    target = root + a * (mid - root) + b * (end - root)
    new_mid, new_end = two_bone(root, mid, end, target)
    assert np.all(np.abs(np.sum((new_mid - root) * normal, axis=1)) <= 1e-9 * norm(normal) * 10)
    new_normal = np.cross(new_mid - root, new_end - root)
    bent = norm(new_normal) > 1e-9 * norm(normal)
    assert bent.sum() > 500
    assert np.all(np.sum(new_normal * normal, axis=1)[bent] > 0)
    # Out of the plane: the new plane's normal is the old one made
    # perpendicular to the root-target line.
    target = root + rng.normal(size=(2000, 3))
    new_mid, new_end = two_bone(root, mid, end, target)
    u = (target - root) / norm(target - root)[:, None]
    expected = normal - np.sum(normal * u, axis=1, keepdims=True) * u
    new_normal = np.cross(new_mid - root, new_end - root)
    bent = norm(new_normal) > 1e-6 * norm(new_mid - root) * norm(new_end - root)
    new_normal, expected = new_normal[bent], expected[bent]
    cosine = np.sum(new_normal * expected, axis=1) / (norm(new_normal) * norm(expected))
    assert len(cosine) > 500 and np.all(cosine > 1 - 1e-9)


@pytest.mark.parametrize("with_pole", [False, True])
def test_two_bone_matches_the_law_of_cosines_reference(rng, with_pole):
    root, mid, end, target, pole = random_limbs(rng, 400)
    new_mid, new_end = two_bone(root, mid, end, target, pole if with_pole else None)
    chain = norm(mid - root) + norm(end - mid)
    margin = reachable(root, mid, end, target, margin=1e-3)
    for i in range(len(root)):
        ref_mid, ref_end = two_bone_reference(root[i], mid[i], end[i], target[i], pole[i] if with_pole else None)
        # The reference's arccos loses half the digits near straight limbs.
        tol = (1e-11 if margin[i] else 1e-6) * chain[i]
        assert np.abs(new_mid[i] - ref_mid).max() <= tol, i
        assert np.abs(new_end[i] - ref_end).max() <= 1e-12 * chain[i], i


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 170.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_two_bone_on_random_limbs(seed, scale, dtype):
    rng = np.random.default_rng(seed)
    root, mid, end, target, pole = (x.astype(dtype) for x in random_limbs(rng, 64, scale))
    tol = 1e-9 if dtype == np.float64 else 2e-5
    for with_pole in (False, True):
        new_mid, new_end, upper, lower = two_bone(
            root, mid, end, target, pole if with_pole else None, return_rotations=True
        )
        assert new_mid.dtype == dtype and upper.dtype == dtype
        x = [v.astype(np.float64) for v in (root, mid, end, target, new_mid, new_end)]
        l1, l2 = norm(x[1] - x[0]), norm(x[2] - x[1])
        chain = l1 + l2
        assert np.all(np.abs(norm(x[4] - x[0]) - l1) <= tol * chain)
        assert np.all(np.abs(norm(x[5] - x[4]) - l2) <= tol * chain)
        ok = reachable(*x[:4], margin=1e-4)
        assert np.all(norm(x[5] - x[3])[ok] <= (1e-6 if dtype == np.float64 else 1e-5) * chain[ok])


def test_two_bone_rotations_take_the_old_bones_to_the_new(rng):
    root, mid, end, target, pole = random_limbs(rng, 2000)
    for p in (None, pole):
        new_mid, new_end, upper, lower = two_bone(root, mid, end, target, p, return_rotations=True)
        for rotation in (upper, lower):
            assert np.abs(rotation @ np.swapaxes(rotation, 1, 2) - np.eye(3)).max() < 1e-12
            assert np.abs(np.linalg.det(rotation) - 1).max() < 1e-12
        assert np.abs(np.einsum("bij,bj->bi", upper, mid - root) - (new_mid - root)).max() < 1e-12 * 20
        assert np.abs(np.einsum("bij,bj->bi", lower, end - mid) - (new_end - new_mid)).max() < 1e-12 * 20
        # The knee's local change is a hinge about the old bend normal.
        normal = np.cross(mid - root, end - root)
        normal /= norm(normal)[:, None]
        hinge = np.swapaxes(upper, 1, 2) @ lower
        assert np.abs(np.einsum("bij,bj->bi", hinge, normal) - normal).max() < 1e-11


def test_two_bone_degenerate_limbs_are_finite_and_deterministic():
    o, x, y, z = np.zeros(3), np.array([1.0, 0, 0]), np.array([0.0, 1, 0]), np.array([0.0, 0, 1])
    cases = [
        (o, x, 2 * x, 1.5 * y, None),  # straight limb, target off the line
        (o, x, 2 * x, 1.5 * x, None),  # straight limb, target on the line
        (o, x, 2 * x, 1.5 * x, 3 * x),  # pole on the root-target line
        (o, x, 2 * x, o, None),  # target on the root (l1 = l2: folded onto it)
        (o, x, 3 * x, o, y),  # target on the root, l1 != l2
        (o, x, x + y, 1.2 * z, None),  # target along the bend normal
        (o, o, x, 0.5 * y, None),  # zero-length upper bone
        (o, x, x, 3 * y, None),  # zero-length lower bone
        (o, o, o, y, None),  # a limb of zero size
        (o, o, o, o, o),  # everything on one point
        (y, y + x, y + 2 * x, y + x * 1e-300, None),  # target a hair from the root
    ]
    for root, mid, end, target, pole in cases:
        first = two_bone(root, mid, end, target, pole, return_rotations=True)
        again = two_bone(root, mid, end, target, pole, return_rotations=True)
        for a, b in zip(first, again):
            assert np.all(np.isfinite(a)) and np.array_equal(a, b)
        new_mid, new_end, upper, lower = first
        assert abs(norm(new_mid - root) - norm(mid - root)) < 1e-12
        assert abs(norm(new_end - new_mid) - norm(end - mid)) < 1e-12
        for rotation in (upper, lower):
            assert np.abs(rotation @ rotation.T - np.eye(3)).max() < 1e-12 and np.linalg.det(rotation) > 0
    # Straight limb, target on the line inside the reach: bends, and the end gets there.
    new_mid, new_end = two_bone(o, x, 2 * x, 1.5 * x)
    assert np.allclose(new_end, 1.5 * x) and norm(new_mid - new_mid @ x * x) > 0.5
    # Target on the root with l1 = l2: folded onto the root.
    assert np.allclose(two_bone(o, x, 2 * x, o)[1], o)


def test_two_bone_broadcasts_and_keeps_batch_shapes(rng):
    root, mid, end, target, pole = random_limbs(rng, 12)
    shared = two_bone(root[0], mid[0], end[0], target.reshape(3, 4, 3), pole[0])
    tiled = two_bone(
        *(np.broadcast_to(v[0], (3, 4, 3)) for v in (root, mid, end)),
        target.reshape(3, 4, 3),
        np.broadcast_to(pole[0], (3, 4, 3)),
    )
    for a, b in zip(shared, tiled):
        assert a.shape == (3, 4, 3) and np.array_equal(a, b)
    single = two_bone(root[0].tolist(), mid[0].tolist(), end[0].tolist(), target[0].tolist())
    assert single[0].shape == (3,) and single[0].dtype == np.float64
    empty = two_bone(root[:0], mid[:0], end[:0], target[:0], return_rotations=True)
    assert [a.shape for a in empty] == [(0, 3), (0, 3), (0, 3, 3), (0, 3, 3)]


def test_two_bone_threads_match_one_thread(rng):
    root, mid, end, target, pole = random_limbs(rng, 30000)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        serial = two_bone(root, mid, end, target, pole, return_rotations=True)
        fastkin.set_num_threads(2)
        parallel = two_bone(root, mid, end, target, pole, return_rotations=True)
    finally:
        fastkin.set_num_threads(before)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)


# -- two_bone_skeleton ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["quat", "matrix"])
def test_two_bone_skeleton_puts_the_end_on_the_target(rng, form):
    # hip -> (twist) -> knee -> ankle -> toe, on a pelvis with another leg.
    parents = [-1, 0, 1, 2, 3, 4, 0, 6]
    offsets = rng.normal(size=(8, 3))
    skeleton = fastkin.Skeleton(
        parents, offsets, names=["pelvis", "hip", "twist", "knee", "ankle", "toe", "hip2", "knee2"]
    )
    quats = random_quaternions(rng, (40, 8))
    rotations = quats if form == "quat" else _matrices(quats)
    _, positions = fastkin.fk_batch(skeleton, rotations)
    l1 = norm(positions[:, 3] - positions[:, 1])
    l2 = norm(positions[:, 4] - positions[:, 3])
    direction = rng.normal(size=(40, 3))
    direction /= norm(direction)[:, None]
    target = (
        positions[:, 1]
        + direction
        * (np.abs(l1 - l2) + (l1 + l2 - np.abs(l1 - l2)) * rng.uniform(0.05, 0.95, size=(40, 1)).ravel())[:, None]
    )
    pole = positions[:, 1] + rng.normal(size=(40, 3))
    posed = fastkin.ik.two_bone_skeleton(skeleton, rotations, ("hip", "knee", "ankle"), target, pole)
    assert posed.shape == rotations.shape
    _, moved = fastkin.fk_batch(skeleton, posed)
    new_mid, new_end = two_bone(positions[:, 1], positions[:, 3], positions[:, 4], target, pole)
    assert np.abs(moved[:, 4] - target).max() < 1e-9
    assert np.abs(moved[:, 3] - new_mid).max() < 1e-9
    # Only the hip and knee rotations change; the other leg does not move.
    changed = np.abs(posed - rotations).reshape(40, 8, -1).max(axis=(0, 2)) > 0
    assert list(np.flatnonzero(changed)) == [1, 3]
    assert np.abs(moved[:, [0, 6, 7]] - positions[:, [0, 6, 7]]).max() < 1e-12


def _matrices(quats):
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(quats.shape[:-1] + (3, 3))


def test_two_bone_skeleton_broadcasts_one_pose_over_many_targets(rng):
    skeleton = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, -1, 0], [0, -1, 0]])
    target = rng.normal(size=(5, 3)) * 0.5 + [0, -1, 0]
    posed = fastkin.ik.two_bone_skeleton(skeleton, skeleton.rest_pose(), (0, 1, 2), target, [0.0, -1, 1])
    assert posed.shape == (5, 3, 4)
    assert np.abs(fastkin.fk_batch(skeleton, posed)[1][:, 2] - target).max() < 1e-9


# -- fabrik ---------------------------------------------------------------------------------------


def chain_case(rng, num_joints, frames):
    """A random chain's start poses and reachable targets for its last joint
    (from other poses of the chain), away from the edge of its reach."""
    parents = list(range(-1, num_joints - 1))
    skeleton = fastkin.Skeleton(parents, rng.normal(size=(num_joints, 3)) * rng.uniform(0.2, 2.0, size=(num_joints, 1)))
    start = fastkin.fk_batch(skeleton, random_quaternions(rng, (frames, num_joints)))[1]
    goal = fastkin.fk_batch(skeleton, random_quaternions(rng, (frames, num_joints)))[1][:, -1:]
    lengths = norm(skeleton.offsets[1:])
    inner = max(0.0, 2 * lengths.max() - lengths.sum())
    distance = norm(goal[:, 0] - start[:, 0])
    keep = (distance > inner + 0.02 * lengths.sum()) & (distance < 0.98 * lengths.sum())
    return parents, start[keep], goal[keep], lengths.sum()


def bone_lengths(positions, parents):
    parents = np.asarray(parents)
    children = np.flatnonzero(parents >= 0)
    return norm(positions[..., children, :] - positions[..., parents[children], :])


@pytest.mark.parametrize("num_joints", [3, 4, 7, 16])
def test_fabrik_reaches_reachable_targets_on_chains(rng, num_joints):
    parents, start, goal, reach = chain_case(rng, num_joints, 300)
    solved, iterations, converged = fabrik(
        start, parents, goal, target_joints=[num_joints - 1], max_iters=2000, tol=1e-6 * reach
    )
    assert converged.all() and iterations.max() <= 2000 and iterations.dtype == np.int32
    assert norm(solved[:, -1] - goal[:, 0]).max() <= 1e-6 * reach
    assert np.abs(bone_lengths(solved, parents) - bone_lengths(start, parents)).max() <= 1e-9 * reach
    assert np.array_equal(solved[:, 0], start[:, 0])


def test_fabrik_stretches_towards_unreachable_targets(rng):
    parents, start, _, reach = chain_case(rng, 5, 50)
    direction = rng.normal(size=(len(start), 3))
    direction /= norm(direction)[:, None]
    goal = start[:, 0] + direction * reach * rng.uniform(1.01, 3.0, size=(len(start), 1))
    solved, iterations, converged = fabrik(start, parents, goal[:, None], target_joints=[4])
    assert not converged.any() and np.all(iterations == 1)
    # Every joint on the ray from the root towards the target, in order.
    along = np.einsum("bjk,bk->bj", solved - start[:, :1], direction)
    assert np.abs(solved - start[:, :1] - along[..., None] * direction[:, None]).max() < 1e-12 * reach
    assert np.all(np.diff(along, axis=1) >= 0)
    assert np.abs(along[:, -1] - reach).max() < 1e-12 * reach
    assert np.abs(bone_lengths(solved, parents) - bone_lengths(start, parents)).max() <= 1e-12 * reach


def leads_to_target(parents, target_joints):
    """(J,) bool: the joints that are a target joint or an ancestor of one."""
    active = np.zeros(len(parents), bool)
    for j in target_joints:
        while j >= 0 and not active[j]:
            active[j] = True
            j = parents[j]
    return active


@pytest.mark.parametrize("num_joints", [3, 4, 7])
def test_fabrik_leaves_a_straight_chain_on_the_line_to_its_target(rng, num_joints):
    # A straight chain (a T-pose arm) and targets on its own line, in front
    # and behind: FABRIK alone never leaves the line; the stall kick bends it.
    parents = list(range(-1, num_joints - 1))
    direction = rng.normal(size=3)
    direction /= norm(direction)
    start = np.arange(num_joints)[:, None] * direction * 0.5 + rng.normal(size=3)
    reach = 0.5 * (num_joints - 1)
    for along in (-0.6, -0.1, 0.2, 0.7, 0.95):
        target = start[0] + along * reach * direction
        solved, iterations, converged = fabrik(
            start, parents, target[None], target_joints=[num_joints - 1], max_iters=1000
        )
        assert converged, (along, iterations)
        assert norm(solved[-1] - target) <= 1e-6 * reach
        assert np.abs(bone_lengths(solved, parents) - 0.5).max() < 1e-12


def body_case(rng, frames, dtype=np.float64):
    skeleton = fastkin.Skeleton(SMPL_PARENTS, rng.normal(size=(24, 3)) * 0.2)
    start = fastkin.fk_batch(skeleton, random_quaternions(rng, (frames, 24)))[1]
    goal = fastkin.fk_batch(skeleton, random_quaternions(rng, (frames, 24)))[1]
    return skeleton, start.astype(dtype), goal[:, BODY_TARGETS].astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fabrik_reaches_every_end_effector_of_a_body(rng, dtype):
    skeleton, start, goal = body_case(rng, 200, dtype)
    solved, iterations, converged = fabrik(start, skeleton, goal, target_joints=BODY_TARGETS, max_iters=2000)
    assert solved.dtype == dtype and converged.all()
    reach = bone_lengths(start.astype(np.float64), SMPL_PARENTS)[
        :, leads_to_target(SMPL_PARENTS, BODY_TARGETS)[1:]
    ].sum(axis=1)
    relative = 1e-6 if dtype == np.float64 else 1e-5  # the default tol
    assert np.all(norm(solved[:, BODY_TARGETS] - goal).max(axis=1) <= relative * reach * 1.0001)
    length_tol = 1e-9 if dtype == np.float64 else 1e-5
    assert (
        np.abs(bone_lengths(solved, SMPL_PARENTS) - bone_lengths(start, SMPL_PARENTS)).max() <= length_tol * reach.max()
    )
    # The hands (below the targeted wrists) and the root stay rigid / put.
    assert np.array_equal(solved[:, 0], start[:, 0])
    assert not np.allclose(solved[:, 22], start[:, 22])


def test_fabrik_matches_the_reference_pass_by_pass(rng):
    skeleton, start, goal = body_case(rng, 6)
    for fixed_root in (True, False):
        for passes in (1, 4):
            solved, iterations, _ = fabrik(
                start,
                SMPL_PARENTS,
                goal,
                target_joints=BODY_TARGETS,
                max_iters=passes,
                tol=1e-300,
                fixed_root=fixed_root,
            )
            assert np.all(iterations == passes)
            for b in range(len(start)):
                expected = fabrik_reference(start[b], SMPL_PARENTS, goal[b], BODY_TARGETS, passes, fixed_root)
                assert np.abs(solved[b] - expected).max() < 1e-12


def test_fabrik_targets_on_inner_joints_and_names(rng):
    skeleton, start, goal = body_case(rng, 20)
    names = [skeleton.names[j] for j in (20, 18)]  # a wrist and the elbow above it
    inner_goal = fastkin.fk_batch(skeleton, random_quaternions(rng, (20, 24)))[1][:, [20, 18]]
    solved, _, converged = fabrik(start, skeleton, inner_goal, target_joints=names, max_iters=2000)
    assert converged.all()
    assert norm(solved[:, [20, 18]] - inner_goal).max() < 1e-5


def test_fabrik_with_a_free_root_moves_it(rng):
    parents, start, goal, reach = chain_case(rng, 5, 20)
    far = start[:, :1] + (goal - start[:, :1]) * 3  # out of reach of a fixed root
    solved, iterations, converged = fabrik(start, parents, far, target_joints=[4], fixed_root=False)
    assert converged.all() and np.all(iterations == 1)
    assert np.abs(solved[:, 4] - far[:, 0]).max() < 1e-9 * reach
    assert np.abs(bone_lengths(solved, parents) - bone_lengths(start, parents)).max() <= 1e-9 * reach


def test_fabrik_start_already_at_the_targets(rng):
    skeleton, start, _ = body_case(rng, 4)
    solved, iterations, converged = fabrik(start, SMPL_PARENTS, start[:, BODY_TARGETS], target_joints=BODY_TARGETS)
    assert np.array_equal(solved, start) and np.all(iterations == 0) and converged.all()


def test_fabrik_unreachable_tree_stops_and_reports_it(rng):
    skeleton, start, goal = body_case(rng, 10)
    far = goal * 100
    solved, iterations, converged = fabrik(start, SMPL_PARENTS, far, target_joints=BODY_TARGETS, max_iters=500)
    assert not converged.any() and np.all(np.isfinite(solved))
    assert np.abs(bone_lengths(solved, SMPL_PARENTS) - bone_lengths(start, SMPL_PARENTS)).max() < 1e-9
    assert iterations.max() < 500  # settles (the pose stops changing) before max_iters


def test_fabrik_broadcasts_one_start_over_many_targets(rng):
    skeleton, start, goal = body_case(rng, 8)
    shared = fabrik(start[0], SMPL_PARENTS, goal.reshape(2, 4, 5, 3), target_joints=BODY_TARGETS)
    tiled = fabrik(
        np.broadcast_to(start[0], (2, 4, 24, 3)), SMPL_PARENTS, goal.reshape(2, 4, 5, 3), target_joints=BODY_TARGETS
    )
    assert shared[0].shape == (2, 4, 24, 3) and shared[1].shape == (2, 4) and shared[2].dtype == np.bool_
    for a, b in zip(shared, tiled):
        assert np.array_equal(a, b)
    single = fabrik(start[0], SMPL_PARENTS, goal[0], target_joints=BODY_TARGETS)
    assert single[0].shape == (24, 3) and single[1].shape == () and single[2].shape == ()


def test_fabrik_forest_moves_only_trees_with_targets(rng):
    parents = [-1, 0, 1, -1, 3, 4]
    start = rng.normal(size=(3, 6, 3))
    goal = start[:, [2]] + 0.01
    solved, _, _ = fabrik(start, parents, goal, target_joints=[2])
    assert np.array_equal(solved[:, 3:], start[:, 3:])


def test_fabrik_threads_match_one_thread(rng):
    skeleton, start, goal = body_case(rng, 600)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(1)
        serial = fabrik(start, SMPL_PARENTS, goal, target_joints=BODY_TARGETS)
        fastkin.set_num_threads(2)
        parallel = fabrik(start, SMPL_PARENTS, goal, target_joints=BODY_TARGETS)
    finally:
        fastkin.set_num_threads(before)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)


# -- torch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_torch_in_torch_out_not_differentiable(rng, dtype_name):
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, dtype_name)
    root, mid, end, target, pole = random_limbs(rng, 10)
    tensors = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in (root, mid, end, target, pole)]
    out = two_bone(*tensors, return_rotations=True)
    expected = two_bone(*(t.detach().numpy() for t in tensors), return_rotations=True)
    for a, b in zip(out, expected):
        assert isinstance(a, torch.Tensor) and a.dtype == dtype and not a.requires_grad
        assert np.array_equal(a.numpy(), b)
    skeleton, start, goal = body_case(rng, 3)
    solved, iterations, converged = fabrik(
        torch.tensor(start, dtype=dtype), skeleton, torch.tensor(goal, dtype=dtype), target_joints=BODY_TARGETS
    )
    assert solved.dtype == dtype and iterations.dtype == torch.int32 and converged.dtype == torch.bool
    expected = fabrik(
        start.astype(solved.numpy().dtype), skeleton, goal.astype(solved.numpy().dtype), target_joints=BODY_TARGETS
    )
    assert np.array_equal(solved.numpy(), expected[0])
    leg = fastkin.Skeleton([-1, 0, 1], [[0, 0, 0], [0, -1, 0], [0, -1, 0]])
    posed = fastkin.ik.two_bone_skeleton(
        leg, torch.tensor(leg.rest_pose(), dtype=dtype), (0, 1, 2), torch.tensor([0.0, -1.2, 0], dtype=dtype)
    )
    assert isinstance(posed, torch.Tensor) and posed.dtype == dtype
