"""PoseToRotation (GL-GMHA, any skeleton): tree relations against a slow
path-walking reference, exact properties of the reference-pair formulation
(the reference pose answers the reference rotations; re-oriented joint frames
give the correspondingly re-oriented rotations), padding, robustness to odd
skeletons and bad input, gradient flow, and a tiny overfit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import fastkin
from fastkin.learned import (
    EDGE_TYPES,
    Clip,
    PoseToRotation,
    SkeletonGraph,
    correction_kinds,
    load_clips,
    p2r_batch,
    pad_inputs,
    procedural_clip,
    rotation_errors,
    swing_estimate,
    twist_part,
)

RNG = np.random.default_rng(7)


def random_skeleton(parents, rng, zero_bones=()):
    offsets = rng.normal(size=(len(parents), 3))
    offsets[list(zero_bones)] = 0.0
    rest = Rotation.random(len(parents), random_state=rng).as_quat()
    return fastkin.Skeleton(parents, offsets, rest)


def random_pose(skeleton, rng, frames):
    rotations = Rotation.random(frames * skeleton.num_joints, random_state=rng).as_quat()
    return rotations.reshape(frames, skeleton.num_joints, 4), rng.normal(size=(frames, 3))


def randomised(model, rng):
    """The model with every parameter random (untrained models answer the
    reference: the head starts at identity)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.as_tensor(rng.normal(scale=0.3, size=tuple(p.shape)), dtype=p.dtype))
    return model


def path_to_root(parents, j):
    path = [j]
    while parents[path[-1]] >= 0:
        path.append(parents[path[-1]])
    return path


def test_graph_matches_path_walking():
    parents = [-1, 0, 1, 2, 1, 0, 5, -1, 7]  # a forest: two trees
    graph = SkeletonGraph(parents, max_hops=3)
    for a in range(len(parents)):
        up_a = path_to_root(parents, a)
        for b in range(len(parents)):
            up_b = path_to_root(parents, b)
            if up_a[-1] != up_b[-1]:
                kind, hops = "other tree", 4
            else:
                common = next(x for x in up_a if x in up_b)
                hops = min(up_a.index(common) + up_b.index(common), 4)
                if a == b:
                    kind = "self"
                elif parents[a] == b:
                    kind = "parent"
                elif parents[b] == a:
                    kind = "child"
                elif b in up_a:
                    kind = "ancestor"
                elif a in up_b:
                    kind = "descendant"
                else:
                    kind = "same tree"
            assert EDGE_TYPES[graph.types[a, b]] == kind, (a, b)
            assert graph.hops[a, b] == hops, (a, b)
    np.testing.assert_array_equal(graph.tree_root, [0, 0, 0, 0, 0, 0, 0, 7, 7])
    np.testing.assert_array_equal(graph.is_leaf, [0, 0, 0, 1, 1, 0, 1, 0, 1])


def test_reference_pose_gives_reference_rotations():
    walk = fastkin.data.default_motion()
    model = PoseToRotation(width=16, layers=2)  # untrained: identity change from the reference
    frame = 100
    rotations, root = model.predict(
        walk.skeleton,
        walk.positions()[frame],
        reference=walk.rotations[frame],
        reference_root=walk.root_translation[frame],
    )
    assert rotation_errors(rotations, walk.rotations[frame]).max() < 1e-3
    np.testing.assert_allclose(root, walk.root_translation[frame], atol=1e-9)


def test_reoriented_joint_frames_give_reoriented_rotations():
    """Turning every joint's frame by Q_j (offsets Q_pᵀ o_j, rotations
    Q_pᵀ L_j Q_j) leaves every position unchanged; the prediction must follow
    the same map, whatever the weights."""
    rng = np.random.default_rng(3)
    parents = [-1, 0, 1, 2, 1, 4, 0, 6, 7]
    skeleton = random_skeleton(parents, rng)
    rotations, root = random_pose(skeleton, rng, 5)
    reference, _ = random_pose(skeleton, rng, 1)
    q = Rotation.random(len(parents), random_state=rng)
    q_parent = Rotation.concatenate([q[p] if p >= 0 else Rotation.identity() for p in parents])

    def reoriented(local):
        return (q_parent.inv() * Rotation.from_quat(np.array(local).reshape(-1, 4)) * q).as_quat()

    offsets = q_parent.inv().apply(np.array(skeleton.offsets))
    turned = fastkin.Skeleton(parents, offsets, reoriented(skeleton.rest_rotations))
    turned_rotations = np.stack([reoriented(r) for r in rotations])
    positions = fastkin.fk_batch(skeleton, rotations, root)[1]
    np.testing.assert_allclose(fastkin.fk_batch(turned, turned_rotations, root)[1], positions, atol=1e-9)

    model = randomised(PoseToRotation(width=16, layers=2), rng)
    predicted, _ = model.predict(skeleton, positions, reference=reference[0])
    predicted_turned, _ = model.predict(turned, positions, reference=reoriented(reference[0]))
    expected = np.stack([reoriented(r) for r in predicted])
    assert rotation_errors(predicted_turned, expected).max() < 1e-2  # float32 network


def test_padding_changes_nothing():
    rng = np.random.default_rng(5)
    model = randomised(PoseToRotation(width=16, layers=3), rng)
    skeletons = [random_skeleton(p, rng) for p in ([-1, 0, 1, 1], [-1, 0], [-1, 0, 1, 2, 3, 0, 5])]
    items = []
    for s in skeletons:
        pose = torch.as_tensor(fastkin.fk_batch(s, *random_pose(s, rng, 2))[1], dtype=torch.float32)
        reference = torch.as_tensor(fastkin.fk_batch(s, random_pose(s, rng, 1)[0][0])[1], dtype=torch.float32)
        items.append(model.inputs(s, pose, reference))
    together = model(*pad_inputs(items))
    for index, item in enumerate(items):
        j = item[0].shape[1]
        alone = model(*item)
        torch.testing.assert_close(together[2 * index : 2 * index + 2, :j], alone, atol=1e-5, rtol=0)
    assert not torch.isnan(together).any()


@pytest.mark.parametrize(
    "parents,zero_bones",
    [
        ([-1], ()),
        ([-1, 0], ()),
        ([-1] + list(range(149)), ()),  # a 150-joint chain
        ([-1, 0, -1, 2, 3], ()),  # a forest
        ([-1, 0, 1, 1, 0], (2, 4)),  # zero-length bones
        ([-1, 0, 0, 0], (1, 2, 3)),  # every bone zero-length
    ],
    ids=["1", "2", "150", "forest", "zero-bones", "all-zero"],
)
def test_odd_skeletons_give_finite_rotations(parents, zero_bones):
    rng = np.random.default_rng(len(parents))
    skeleton = random_skeleton(parents, rng, zero_bones)
    model = randomised(PoseToRotation(width=16, layers=2), rng)
    rotations, root = random_pose(skeleton, rng, 3)
    positions = fastkin.fk_batch(skeleton, rotations, root)[1]
    predicted, predicted_root = model.predict(skeleton, positions, reference=random_pose(skeleton, rng, 1)[0][0])
    assert predicted.shape == (3, len(parents), 4) and predicted_root.shape == (3, 3)
    assert np.isfinite(predicted).all() and np.isfinite(predicted_root).all()
    np.testing.assert_allclose(np.linalg.norm(predicted, axis=-1), 1.0, atol=1e-9)


def test_bad_input_is_refused_clearly():
    walk = fastkin.data.default_motion()
    model = PoseToRotation(width=16, layers=1)
    positions = walk.positions()[:2].copy()
    with pytest.raises(TypeError, match="skeleton"):
        model.predict(None, positions)
    with pytest.raises(ValueError, match=r"positions must have shape \(\.\.\., 38, 3\)"):
        model.predict(walk.skeleton, positions[:, :10])
    positions[1, 4, 2] = np.nan
    with pytest.raises(ValueError, match="positions must be finite"):
        model.predict(walk.skeleton, positions)
    with pytest.raises(ValueError, match=r"reference must have shape \(38, 4\)"):
        model.predict(walk.skeleton, walk.positions()[:1], reference=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="reference must hold finite, nonzero"):
        model.predict(walk.skeleton, walk.positions()[:1], reference=np.zeros((38, 4)))
    with pytest.raises(TypeError, match="positions must be floating point"):
        model.predict(walk.skeleton, np.zeros((38, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="heads"):
        PoseToRotation(width=10, heads=4)
    with pytest.raises(ValueError, match="layers must be a positive integer"):
        PoseToRotation(layers=0)


def test_batch_shapes_and_torch_in_torch_out():
    walk = fastkin.data.default_motion()
    model = PoseToRotation(width=16, layers=2)
    positions = walk.positions()[:6]
    single, root = model.predict(walk.skeleton, positions[0])
    assert single.shape == (38, 4) and root.shape == (3,)
    grid, root = model.predict(walk.skeleton, positions.reshape(2, 3, 38, 3))
    assert grid.shape == (2, 3, 38, 4) and root.shape == (2, 3, 3)
    flat, _ = model.predict(walk.skeleton, positions)
    np.testing.assert_allclose(grid.reshape(6, 38, 4), flat, atol=1e-12)
    as_torch, torch_root = model.predict(walk.skeleton, torch.as_tensor(positions, dtype=torch.float32))
    assert as_torch.dtype == torch.float32 and torch_root.dtype == torch.float32


def test_gradients_reach_every_parameter():
    walk = fastkin.data.default_motion()
    model = randomised(PoseToRotation(width=16, layers=2), np.random.default_rng(0))
    positions = torch.as_tensor(walk.positions()[:3]).requires_grad_(True)
    rotations, _ = model.predict(walk.skeleton, positions, reference=walk.rotations[0])
    rotations.square().mul(torch.linspace(0, 1, 4, dtype=rotations.dtype)).sum().backward()
    assert positions.grad is not None and torch.isfinite(positions.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_tiny_overfit():
    """32 frames of real motion, one reference: the geodesic loss falls to
    near zero (no accuracy figure is asserted, only that it can fit)."""
    torch.manual_seed(0)
    walk = fastkin.data.default_motion()
    frames = np.arange(0, 320, 10)
    positions = torch.as_tensor(walk.positions()[frames], dtype=torch.float32)
    model = PoseToRotation(width=32, layers=2)
    inputs = model.inputs(walk.skeleton, positions, torch.as_tensor(walk.positions()[0], dtype=torch.float32))
    reference_world = torch.as_tensor(fastkin.fk_batch(walk.skeleton, walk.rotations[0])[0], dtype=torch.float32)
    truth_world = torch.as_tensor(fastkin.fk_batch(walk.skeleton, walk.rotations[frames])[0], dtype=torch.float32)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        world = model(*inputs) @ reference_world
        loss = (world - truth_world).square().sum((-1, -2)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("use_reference", [True, False])
def test_augmented_batches_stay_rigid(use_reference):
    """Whatever the augmentation (bone scaling, sub-skeletons, mirroring,
    orientation), each bone seen in its parent's true frame is the same
    vector in every pose of an item and in its reference pose: frames and
    positions were transformed together."""
    rng = np.random.default_rng(9)
    clips = [procedural_clip(rng, frames=40) for _ in range(4)]
    clips += load_clips([fastkin.data.path("cmu_12_01_walk.bvh")])
    batch = p2r_batch(
        clips, rng, skeletons=8, frames=4, scale_jitter=0.2, subset=0.6, mirror=0.5, use_reference=use_reference
    )
    features, _, types, valid = batch.inputs
    assert torch.allclose(torch.linalg.det(batch.frames), torch.ones(()), atol=1e-4)
    checked = 0
    for item in range(8):
        rows = slice(4 * item, 4 * item + 4)
        parent = (types[4 * item] == 1).float().argmax(-1)
        has_parent = (types[4 * item] == 1).any(-1) & valid[4 * item]
        bones = features[rows, :, 21:24]  # current bone vectors (scaled like the reference's)
        local = (batch.frames[rows][:, parent].transpose(-1, -2) @ bones[..., None])[..., 0]
        reference_bones = features[4 * item, :, 9:12]
        reference_local = (batch.reference_frames[4 * item][parent].transpose(-1, -2) @ reference_bones[..., None])[
            ..., 0
        ]
        torch.testing.assert_close(local[:, has_parent], local[:1, has_parent].expand(4, -1, -1), atol=1e-4, rtol=0)
        torch.testing.assert_close(reference_local[has_parent], local[0, has_parent], atol=1e-4, rtol=0)
        checked += int(has_parent.sum())
    assert checked > 20


def test_swing_estimate_recovers_directions_and_rigid_turns():
    """Bones point exactly where the positions say (single children), and a
    pose that is the reference turned rigidly gives that turn everywhere."""
    rng = np.random.default_rng(4)
    skeleton = random_skeleton([-1, 0, 1, 2, 1, 4, 0, 6], rng)
    reference, root = random_pose(skeleton, rng, 1)
    posed, _ = random_pose(skeleton, rng, 1)
    ref_positions = torch.as_tensor(fastkin.fk_batch(skeleton, reference[0])[1])
    positions = torch.as_tensor(fastkin.fk_batch(skeleton, posed)[1])
    estimate = swing_estimate(skeleton.parents, ref_positions, positions)
    parents = np.asarray(skeleton.parents)
    for joint in (2, 4, 6):  # one child each
        child = int(np.flatnonzero(parents == joint)[0])
        turned = estimate[0, joint] @ (ref_positions[child] - ref_positions[joint])
        want = positions[0, child] - positions[0, joint]
        torch.testing.assert_close(turned, want, atol=1e-9, rtol=1e-9)
    for leaf in (3, 5, 7):  # no child: moves with its parent
        torch.testing.assert_close(estimate[0, leaf], estimate[0, parents[leaf]], atol=0, rtol=0)
    turn = torch.as_tensor(Rotation.random(random_state=rng).as_matrix())
    rigid = swing_estimate(skeleton.parents, ref_positions, (ref_positions @ turn.T)[None] + 3.0)
    for joint in (0, 1):  # two children: the least-squares fit is the turn itself
        torch.testing.assert_close(rigid[0, joint], turn, atol=1e-9, rtol=1e-9)


def test_untrained_model_from_rest_is_analytic_ik():
    """With the rest pose as the reference, the geometric estimate is
    ik.analytic's answer (an independent implementation): an untrained
    model (identity correction) reproduces it on real motion."""
    walk = fastkin.data.default_motion()[::40]
    model = PoseToRotation(width=16, layers=2)
    predicted, root = model.predict(walk.skeleton, walk.positions())
    expected, expected_root = fastkin.ik.analytic(walk.skeleton, walk.positions())
    assert rotation_errors(predicted, expected).max() < 0.05  # degrees; float32 inside
    np.testing.assert_allclose(root, expected_root, atol=1e-9)


# Head widths 8 (vector attention) and 6 (scalar dot products) in the kernel.
@pytest.mark.parametrize(
    "size", [dict(width=32, layers=3, heads=4), dict(width=18, layers=2, heads=3)], ids=["w32", "w18"]
)
@pytest.mark.parametrize("reference", ["pose", "rest"])
def test_compiled_pass_matches_torch(reference, size):
    """predict without gradients runs PreparedPoseToRotation (the compiled
    transformer, the estimate from compiled analytic IK); with gradients, the
    torch modules. Random weights, real motion: the two agree."""
    walk = fastkin.data.default_motion()[::25]
    model = randomised(PoseToRotation(**size), np.random.default_rng(12))
    pose = walk.rotations[3] if reference == "pose" else None
    fast, fast_root = model.predict(walk.skeleton, walk.positions(), reference=pose)
    with torch.enable_grad():
        slow, slow_root = model.predict(
            walk.skeleton, torch.as_tensor(walk.positions()).requires_grad_(True), reference=pose
        )
    assert rotation_errors(fast, slow.detach().numpy()).max() < 0.1  # degrees
    np.testing.assert_allclose(fast_root, slow_root.detach().numpy(), atol=1e-9)
    with torch.no_grad():  # the parameters change: the prepared pass is rebuilt
        model.head.bias.add_(0.5)
    changed, _ = model.predict(walk.skeleton, walk.positions(), reference=pose)
    assert rotation_errors(changed, fast).max() > 1.0


def test_train_p2r_command_writes_a_loadable_model(tmp_path):
    from fastkin.cli import main
    from fastkin.learned import load_model

    walk = str(fastkin.data.path("cmu_12_01_walk.bvh"))
    args = ["train", "p2r", "--data", walk, "--holdout-data", walk, "--out", str(tmp_path), "--steps", "2",
            "--validate-every", "2", "--procedural", "2", "--width", "8", "--layers", "2", "--heads", "2",
            "--max-hops", "3", "--quiet"]  # fmt: skip
    assert main(args) == 0
    model = load_model(tmp_path / "model")
    assert isinstance(model, PoseToRotation) and model.config["max_hops"] == 3
    assert model.record["validation"]["step"] == 2 and "cmu_12_01_walk/learned" in model.record["validation"]
    rotations, _ = model.predict(fastkin.data.default_motion().skeleton, fastkin.data.default_motion().positions()[:2])
    assert rotations.shape == (2, 38, 4)


def test_load_clips_skips_unreadable_files_with_a_warning(tmp_path):
    """A truncated file in a data folder is named in a warning and left out;
    the readable files still load."""
    good = fastkin.data.path("cmu_12_01_walk.bvh")
    text = Path(good).read_text()
    (tmp_path / "walk.bvh").write_text(text)
    (tmp_path / "broken.bvh").write_text(text[: len(text) - 40])
    with pytest.warns(UserWarning, match=r"skipping .*broken\.bvh: .*truncated"):
        clips = load_clips([tmp_path])
    assert [c.name for c in clips] == ["walk"]


def test_twist_part_is_the_swing_twist_split():
    """Against the quaternion definition through scipy: the twist keeps the
    quaternion's part along the axis, (v·a a, w), normalised."""
    rng = np.random.default_rng(21)
    rotations = Rotation.random(200, random_state=21)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    q = rotations.as_quat()  # xyzw
    along = np.sum(q[:, :3] * axes, -1, keepdims=True) * axes
    expected = Rotation.from_quat(np.concatenate([along, q[:, 3:]], -1)).as_matrix()
    got = twist_part(rotations.as_matrix(), axes)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    torch_got = twist_part(torch.as_tensor(rotations.as_matrix()), torch.as_tensor(axes))
    np.testing.assert_allclose(torch_got.numpy(), expected, atol=1e-9)
    # A zero axis (joints that take no twist) gives the identity, not a NaN.
    np.testing.assert_array_equal(
        twist_part(rotations.as_matrix()[:3], np.zeros((3, 3))), np.broadcast_to(np.eye(3), (3, 3, 3))
    )


@pytest.mark.parametrize("path", ["torch", "compiled"])
def test_corrections_never_move_a_bone_positions_fix(path):
    """Whatever the weights, a joint aimed by one bone (or bones along one
    line) turns only about it, so every such bone points exactly at its
    child; a joint aimed by bones in several directions keeps the estimate's
    world rotation. Real motion and a generated tree (which has the latter)."""
    rng = np.random.default_rng(5)
    walk = fastkin.data.default_motion()[::40]
    clips = [Clip.of("walk", walk)] + [procedural_clip(np.random.default_rng(s), frames=12) for s in range(3)]
    model = randomised(PoseToRotation(width=16, layers=2, heads=2), rng)
    untrained = PoseToRotation(width=16, layers=2, heads=2)
    fixed_seen = 0
    for clip in clips:
        skeleton, truth, reference = clip.skeleton, clip.positions.astype(np.float64), clip.rotations[3]
        if path == "torch":
            with torch.enable_grad():
                rotations = model.predict(skeleton, torch.as_tensor(truth), reference=reference)[0].detach().numpy()
        else:
            rotations = model.predict(skeleton, truth, reference=reference)[0]
        world, positions = fastkin.fk_batch(
            skeleton, rotations, truth[:, skeleton.roots[0]] - skeleton.offsets[skeleton.roots[0]]
        )
        kind, end = correction_kinds(skeleton.parents, fastkin.fk_batch(skeleton, reference)[1])
        for j in np.flatnonzero(kind == 1):
            got = positions[:, end[j]] - positions[:, j]
            want = truth[:, end[j]] - truth[:, j]
            cosine = np.sum(got * want, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
            assert (cosine > 1 - 1e-9).all(), (clip.name, j)
        estimate = fastkin.fk_batch(skeleton, untrained.predict(skeleton, truth, reference=reference)[0])[0]
        fixed = kind == 2
        np.testing.assert_allclose(world[:, fixed], estimate[:, fixed], atol=1e-5)
        fixed_seen += int(fixed.sum())
        # The network does change the other joints.
        assert rotation_errors(rotations, untrained.predict(skeleton, truth, reference=reference)[0]).max() > 1.0
    assert fixed_seen > 0
