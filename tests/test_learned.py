"""fastkin.learned: the data pipeline, the IK-GAT model, training and checkpoints."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastkin  # noqa: E402
from fastkin import learned  # noqa: E402
from fastkin.learned import (  # noqa: E402
    IKGAT,
    Augmentation,
    MotionDataset,
    augmented_batch,
    conform,
    ik_loss,
    load_model,
    load_weights,
    save_model,
)

from conftest import shared_data  # noqa: E402

WALK = fastkin.data.path("cmu_12_01_walk.bvh")
NO_AUGMENTATION = Augmentation(heading=False, mirror=0.0, bone_jitter=0.0, noise=0.0)


@pytest.fixture(scope="module")
def walk():
    return fastkin.data.default_motion()


@pytest.fixture(scope="module")
def walk_data(walk):
    return MotionDataset([WALK], walk.skeleton, fps=30, progress=False)


# -- conform and the dataset ---------------------------------------------------------------------


def test_conform_puts_cmu_asf_on_the_bvh_conversion_layout():
    """The ASF/AMC original of take 01_01, conformed to its BVH conversion's
    skeleton, gives that conversion's offsets and joint positions."""
    subject = shared_data() / "train" / "cmu-asfamc" / "subjects" / "01"
    bvh = shared_data() / "train" / "cmu-bvh" / "01_01.bvh"
    if not bvh.exists():
        pytest.skip("shared data not found")
    theirs = fastkin.io.load_bvh(bvh)
    ours = conform(fastkin.io.load_asf_amc(subject / "01.asf", subject / "01_01.amc"), theirs.skeleton)
    np.testing.assert_allclose(ours.skeleton.offsets, theirs.skeleton.offsets, atol=1e-4)
    positions = fastkin.fk_batch(ours.skeleton, ours.rotations, ours.root_translation)[1]
    height = np.ptp(theirs.positions()[..., 1])
    assert np.abs(positions - theirs.positions()[1:]).max() < 1e-3 * height


def test_conform_refuses_other_skeletons(walk):
    fox = fastkin.data.default_character()
    with pytest.raises(ValueError, match="different hierarchy"):
        conform(fox.animations["Walk"], walk.skeleton)
    bent = walk.skeleton.offsets.copy()
    bent[22] = [0.0, -5.0, 0.0]  # the left forearm hangs down instead of out
    other = fastkin.Skeleton(walk.skeleton.parents, bent, names=walk.skeleton.names)
    with pytest.raises(ValueError, match="LeftForeArm"):
        conform(fastkin.Motion(other, walk.rotations, walk.root_translation, walk.fps), walk.skeleton)


def test_dataset_items_are_fk_of_their_rotations(walk, walk_data):
    assert len(walk_data) == len(range(0, len(walk), 4))  # 120 fps -> 30 fps
    positions, rotations = walk_data[5]
    np.testing.assert_allclose(rotations, walk.rotations[20], atol=1e-6)
    np.testing.assert_allclose(positions, walk.positions()[20], atol=1e-4)
    with pytest.raises(IndexError):
        walk_data[len(walk_data)]


def test_dataset_splits_by_take_never_by_frame(walk, tmp_path):
    for name in ("01_01", "01_02", "12_01"):
        fastkin.io.save_bvh(tmp_path / f"{name}.bvh", walk[:10])
    kwargs = dict(fps=None, progress=False, holdout_takes=["01_02"], holdout_subjects=["12"])
    train = MotionDataset([tmp_path], walk.skeleton, split="train", **kwargs)
    held = MotionDataset([tmp_path], walk.skeleton, split="holdout", **kwargs)
    assert [t.name for t in train.takes] == ["01_01"]
    assert sorted(t.name for t in held.takes) == ["01_02", "12_01"]
    with pytest.raises(ValueError, match="split"):
        MotionDataset([tmp_path], walk.skeleton, split="test")


def test_dataset_skips_files_that_do_not_fit(walk, tmp_path):
    fastkin.io.save_bvh(tmp_path / "a.bvh", walk[:5])
    (tmp_path / "broken.bvh").write_text("HIERARCHY\nROOT x {\n")
    data = MotionDataset([tmp_path, fastkin.data.path("Fox.glb")], walk.skeleton, progress=False)
    assert len(data.takes) == 1
    skipped = " ".join(path for path, _ in data.skipped)
    assert "broken.bvh" in skipped and "Fox.glb" in skipped


# -- augmentation ----------------------------------------------------------------------------------


def test_batches_are_consistent_with_fk(walk_data):
    rng = np.random.default_rng(1)
    for _ in range(4):
        batch = augmented_batch(walk_data, 16, rng, Augmentation(noise=0.0))
        again = fastkin.fk_batch(batch.skeleton, batch.rotations.double(), offsets=batch.offsets.double())[1]
        np.testing.assert_allclose(batch.positions.numpy(), again.numpy(), atol=1e-4)
        assert torch.equal(batch.inputs, batch.positions)
        # Bone lengths in the pose are the jittered offsets' lengths.
        parents = np.array(batch.skeleton.parents)
        bones = (batch.positions[:, 1:] - batch.positions[:, parents[1:]]).norm(dim=-1)
        np.testing.assert_allclose(bones.numpy(), batch.offsets[:, 1:].norm(dim=-1).numpy(), atol=1e-4)


def test_mirroring_reflects_positions(walk):
    from fastkin.learned.augment import _mirrored

    pairs = learned.mirror_pairs(walk.skeleton)
    assert (pairs[pairs] == np.arange(len(pairs))).all()
    assert walk.skeleton.names[pairs[walk.skeleton.index("LThumb")]] == "RThumb"
    mirrored, rotations = _mirrored(walk.skeleton, walk.rotations[:50])
    positions = fastkin.fk_batch(walk.skeleton, walk.rotations[:50])[1]
    reflected = fastkin.fk_batch(mirrored, rotations)[1][:, pairs] * [-1.0, 1.0, 1.0]
    np.testing.assert_allclose(reflected, positions, atol=1e-9)


def test_noise_has_the_requested_scale(walk_data):
    rng = np.random.default_rng(2)
    batch = augmented_batch(walk_data, 4096, rng, Augmentation(noise=0.02))
    sigma = (batch.inputs - batch.positions).std(dim=(1, 2))
    height = learned.height(batch.skeleton)
    noisy = sigma > 0
    assert 0.3 < noisy.float().mean() < 0.7  # half the poses are clean
    assert float(sigma.max()) <= 0.021 * height * 1.2


# -- the model -------------------------------------------------------------------------------------


def test_hop_distances_match_scipy():
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    rng = np.random.default_rng(3)
    parents = np.array([-1] + [int(rng.integers(0, j)) for j in range(1, 30)] + [-1, 30, 31])
    edges = np.zeros((len(parents), len(parents)))
    for child, parent in enumerate(parents):
        if parent >= 0:
            edges[child, parent] = edges[parent, child] = 1
    expected = csgraph.shortest_path(edges, unweighted=True)
    ours = learned.hop_distances(parents).astype(float)
    ours[ours >= 1 << 20] = np.inf
    np.testing.assert_array_equal(ours, expected)


def test_untrained_model_answers_the_rest_pose(walk):
    model = IKGAT(walk.skeleton, width=16, layers=1)
    rest = fastkin.fk_batch(walk.skeleton, walk.skeleton.rest_rotations)[1]
    rotations, root = model.predict(rest + [1.0, 2.0, 3.0])
    np.testing.assert_allclose(rotations[:, 3], 1.0, atol=1e-6)
    np.testing.assert_allclose(root, [1.0, 2.0, 3.0], atol=1e-6)


def test_prediction_is_invariant_to_translation_and_scale(walk):
    model = _perturbed(IKGAT(walk.skeleton, width=16, layers=2), seed=4)
    positions = walk.positions()[::50]
    rotations, root = model.predict(positions)
    moved, moved_root = model.predict(positions + [5.0, -1.0, 2.0])
    np.testing.assert_allclose(moved, rotations, atol=1e-5)
    np.testing.assert_allclose(moved_root, root + [5.0, -1.0, 2.0], atol=1e-4)
    scaled, _ = model.predict(positions * 3.0)
    np.testing.assert_allclose(scaled, rotations, atol=1e-4)


def test_predict_keeps_array_kind_and_batch_shape(walk):
    model = IKGAT(walk.skeleton, width=16, layers=1)
    positions = walk.positions()[:6].reshape(2, 3, 38, 3)
    rotations, root = model.predict(positions)
    assert isinstance(rotations, np.ndarray) and rotations.shape == (2, 3, 38, 4) and root.shape == (2, 3, 3)
    rotations_t, root_t = model.predict(torch.from_numpy(positions).float())
    assert rotations_t.dtype == torch.float32 and tuple(rotations_t.shape) == (2, 3, 38, 4)
    np.testing.assert_allclose(rotations_t.detach().numpy(), rotations, atol=1e-5)


@pytest.mark.parametrize(
    "positions, error, match",
    [
        (np.zeros((4, 37, 3)), ValueError, "positions must have shape"),
        (np.zeros(3), ValueError, "positions must have shape"),
        (np.full((2, 38, 3), np.nan), ValueError, "finite"),
        (np.zeros((2, 38, 3), dtype=np.int64), TypeError, "floating point"),
    ],
)
def test_predict_rejects_bad_positions(walk, positions, error, match):
    model = IKGAT(walk.skeleton, width=8, layers=1)
    with pytest.raises(error, match=match):
        model.predict(positions)


def test_predict_rejects_another_hierarchy(walk):
    model = IKGAT(walk.skeleton, width=8, layers=1)
    with pytest.raises(ValueError, match="hierarchy"):
        model.predict(walk.positions()[:2], skeleton=fastkin.Skeleton([-1, 0], [[0, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="heads"):
        IKGAT(walk.skeleton, width=10, heads=4)


def test_refine_moves_joints_onto_the_positions(walk):
    model = _perturbed(IKGAT(walk.skeleton, width=16, layers=1), seed=5, scale=0.01)
    positions = walk.positions()[::100]
    for refine, bound in ((False, None), (True, 1e-6)):
        rotations, root = model.predict(positions, refine=refine, refine_iters=50)
        error = learned.mpjpe(walk.skeleton, rotations, root, positions)
        if bound is None:
            coarse = error
        else:
            assert error < bound * learned.height(walk.skeleton) < coarse


# -- training ------------------------------------------------------------------------------------


def test_gradients_reach_every_parameter_through_fk_batch(walk_data):
    model = _perturbed(IKGAT(walk_data.skeleton, width=16, layers=2), seed=6)
    batch = augmented_batch(walk_data, 8, np.random.default_rng(7))
    # The FK-consistency term alone: its gradient flows back through fastkin.fk_batch
    # and bone_world_to_local into the network.
    loss, _ = ik_loss(model, batch, fk_weight=1.0, local_weight=0.0)
    world_only, _ = ik_loss(model, batch, fk_weight=0.0, local_weight=0.0)
    (loss - world_only).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_tiny_model_overfits_32_frames(walk, walk_data):
    torch.manual_seed(0)
    model = IKGAT(walk.skeleton, width=32, layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(8)
    small = MotionDataset([WALK], walk.skeleton, fps=4, progress=False)  # 18 frames
    batch = augmented_batch(small, 32, rng, NO_AUGMENTATION)
    first = None
    for _ in range(300):
        loss, parts = ik_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first or parts["loss"]
    assert parts["loss"] < 0.05 * first
    assert parts["local_deg"] < 3.0


def test_save_and_load_round_trip(walk, tmp_path):
    model = _perturbed(IKGAT(walk.skeleton, width=16, layers=2, heads=2, hops=2), seed=9)
    save_model(model, tmp_path / "m", {"note": "test"})
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config == model.config and loaded.record == {"note": "test"}
    assert loaded.skeleton == model.skeleton
    positions = walk.positions()[:5]
    np.testing.assert_array_equal(loaded.predict(positions)[0], model.predict(positions)[0])
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", sorted(learned.PRETRAINED))
def test_every_shipped_model_loads_and_predicts(name):
    """Each shipped model loads safely and gives finite rotations on bundled
    data it never trained on; p2r-any's record says the Fox, which the bench
    scores it on, was left out."""
    model = learned.load_pretrained(name)
    if isinstance(model, learned.PoseToRotation):
        assert "Fox" in model.record["excluded"]
        fox = learned.load_clips([fastkin.data.path("Fox.glb")])[0]
        rotations, root = model.predict(fox.skeleton, fox.positions[:5], reference=fox.rotations[0])
        assert rotations.shape == (5, fox.skeleton.num_joints, 4)
    else:
        walk = fastkin.data.default_motion()
        rotations, root = model.predict(walk.positions()[:5], skeleton=walk.skeleton)
    assert np.isfinite(rotations).all() and np.isfinite(root).all()
    np.testing.assert_allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-6)


class Payload:
    """Any object: torch.save pickles it with a reference to this code."""


def test_a_checkpoint_holding_pickled_code_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3), "payload": Payload()}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="refused"):
        load_weights(tmp_path / "bad.pt")
    (tmp_path / "m.json").write_text('{"kind": "Evil", "config": {}, "skeleton": {}}')
    with pytest.raises(ValueError, match="model description|unknown model kind"):
        load_model(tmp_path / "m")


def test_train_command_writes_a_loadable_model_and_resumes(tmp_path):
    from fastkin.cli import main

    def train(steps, *more):
        return main(
            [
                "train",
                "ikgat",
                "--data",
                str(WALK),
                "--skeleton",
                str(WALK),
                "--out",
                str(tmp_path),
                "--holdout-takes",
                "--steps",
                str(steps),
                "--batch-size",
                "8",
                "--validate-every",
                "2",
                "--width",
                "8",
                "--layers",
                "1",
                "--expansion",
                "1",
                "--noise",
                "0.03",
                "--quiet",
                *more,
            ]
        )

    assert train(4) == 0
    model = load_model(tmp_path / "model")
    assert model.record["train"]["steps"] == 4 and model.config["width"] == 8
    assert model.config["expansion"] == 1 and model.record["train"]["augmentation"]["noise"] == 0.03
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 2
    assert train(6, "--resume") == 0  # from step 4: one more validation
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_distributed_training_with_two_processes(tmp_path):
    """torchrun, 2 CPU processes, gloo: a few steps of DistributedDataParallel."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "fastkin",
        "train",
        "ikgat",
        "--data",
        str(WALK),
        "--skeleton",
        str(WALK),
        "--out",
        str(tmp_path),
        "--holdout-takes",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--validate-every",
        "3",
        "--width",
        "8",
        "--layers",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert load_model(tmp_path / "model").record["train"]["steps"] == 3


def _perturbed(model, seed, scale=0.1):
    """The model with every parameter moved randomly (nothing trivially zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return model


def test_benchmark_writes_its_report_and_plots(walk, tmp_path):
    plots = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots = False
    model = IKGAT(fastkin.data.default_motion("cmu_01_01").skeleton, width=8, layers=1)
    any_skeleton = learned.PoseToRotation(width=8, layers=2, heads=2)
    result = learned.run_benchmark(
        tmp_path, model=model, p2r_model=any_skeleton, step=64, speed_batch=64, plots=plots, progress=False
    )
    report = (tmp_path / "report.md").read_text()
    for method in ("learned", "learned + refine", "analytic", "solve (rest)", "solve (random)"):
        for noise in ("0.0%", "0.5%", "1.0%", "2.0%"):
            assert f"| {noise} | {method} |" in report
    assert len(result["speed"]) == 4 and all(s["batch1_fps"] > 0 for s in result["speed"])
    # The any-skeleton section: every Fox animation, four methods each.
    assert [c["clip"] for c in result["p2r"]["clips"]] == ["Fox:Survey", "Fox:Walk", "Fox:Run"]
    for clip in result["p2r"]["clips"]:
        assert (
            f"| {clip['clip']} | {clip['frames']} | {clip['learned']:.2f} / {clip['learned/non_leaf']:.2f} |" in report
        )
    assert result["p2r"]["speed"]["batch1_fps"] > 0
    if plots:
        figures = ("error_per_joint.png", "error_vs_noise.png", "speed.png", "p2r_fox.png")
        assert all((tmp_path / f).stat().st_size > 0 for f in figures)


def test_twist_error_separates_twist_from_swing(walk):
    """A turn about a joint's own bone is all twist; a turn about an axis
    across the bone, seen at the joint's child, is none."""
    skeleton = walk.skeleton
    truth = walk.rotations[100]
    elbow = skeleton.index("LeftForeArm")
    bone = skeleton.offsets[skeleton.index("LeftHand")]
    local_axis = bone / np.linalg.norm(bone)  # the bone in the elbow's frame (rest rotations are identity)
    for angle in (0.3, -1.0, 2.5):
        twisted = truth.copy()
        turn = fastkin.rotations.axis_angle_to_quat(local_axis * angle)
        twisted[elbow] = fastkin.rotations.quat_multiply(truth[elbow], turn)
        error = learned.twist_errors(skeleton, twisted, truth)
        assert error[elbow] == pytest.approx(abs(np.degrees(angle)), abs=1e-6)
        across = np.cross(local_axis, [0.0, 0.0, 1.0])
        swung = truth.copy()
        swung[elbow] = fastkin.rotations.quat_multiply(
            truth[elbow], fastkin.rotations.axis_angle_to_quat(across / np.linalg.norm(across) * angle)
        )
        assert learned.twist_errors(skeleton, swung, truth)[elbow] == pytest.approx(0.0, abs=1e-6)
