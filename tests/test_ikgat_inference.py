"""CompiledIKGAT (the C++ forward pass) against IKGAT.forward in torch, for
several skeletons, model sizes, batch sizes, thread counts and instruction
sets, and its argument checks."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastkin  # noqa: E402
from fastkin import _core  # noqa: E402
from fastkin.learned import IKGAT, CompiledIKGAT, fast_inference  # noqa: E402

TOLERANCE = 1e-4


def perturbed(model: IKGAT, seed: int, noise: float = 0.1) -> IKGAT:
    """The model with every parameter moved by noise (nothing stays zero or
    one, so folding LayerNorm's affine or the pair bias cannot hide)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * noise)
    return model.eval()


def random_positions(skeleton: fastkin.Skeleton, batch: int, seed: int) -> np.ndarray:
    """(B, J, 3) float32 positions of random poses with a random root."""
    rng = np.random.default_rng(seed)
    j = skeleton.num_joints
    axes = rng.normal(size=(batch, j, 3))
    quats = np.concatenate([axes * 0.4, np.ones((batch, j, 1))], -1)
    root = rng.normal(size=(batch, 3))
    return fastkin.fk_batch(skeleton, quats, root_translation=root)[1].astype(np.float32)


def torch_forward(model: IKGAT, positions: np.ndarray) -> np.ndarray:
    """The model run in float64: the reference excludes torch's own float32
    rounding, which differs between CPUs. (float32 -> float64 -> float32 gives
    back the same weights.)"""
    try:
        with torch.no_grad():
            return model.double()(torch.from_numpy(positions).double()).numpy()
    finally:
        model.float()


def small_skeletons() -> dict[str, fastkin.Skeleton]:
    rng = np.random.default_rng(7)
    chain_parents = [-1, 0, 1, 2, 1, 4, 0, 6]
    offsets = rng.normal(size=(8, 3)) * 0.2
    offsets[5] = 0.0  # a zero-length bone: no has_bone
    forest_parents = [-1, 0, 1, -1, 3, 3, 0]
    return {
        "tree": fastkin.Skeleton(chain_parents, offsets),
        "forest": fastkin.Skeleton(forest_parents, rng.normal(size=(7, 3)) * 0.2),
        "one_joint": fastkin.Skeleton([-1], np.zeros((1, 3))),
    }


@pytest.fixture(scope="module")
def walk_model() -> IKGAT:
    """The real model size on the default motion's 38-joint skeleton. (Its
    noise is smaller: through 4 layers float32 rounding alone, torch's or
    ours, grows to ~5e-5 on 1000 frames at 0.1.)"""
    torch.manual_seed(0)
    skeleton = fastkin.data.default_motion().skeleton
    return perturbed(IKGAT(skeleton, width=64, layers=4, heads=4, hops=3, expansion=2), seed=1, noise=0.05)


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matches_torch_on_the_default_skeleton(walk_model, batch, threads):
    positions = random_positions(walk_model.skeleton, batch, seed=batch)
    expected = torch_forward(walk_model, positions)
    compiled = CompiledIKGAT(walk_model)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(threads)
        got = compiled.bone_rotations(positions)
    finally:
        fastkin.set_num_threads(before)
    assert got.shape == (batch, 38, 3, 3) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= TOLERANCE


def test_matches_torch_on_real_motion(walk_model):
    positions = fastkin.data.default_motion().positions()[:200].astype(np.float32)
    got = CompiledIKGAT(walk_model).bone_rotations(positions)
    assert np.abs(got - torch_forward(walk_model, positions)).max() <= TOLERANCE


# Head sizes 4, 8, 16 take the vector attention path, 6 the scalar one; 12
# and 20 wide rows do not fill a SIMD register (padding).
CONFIGS = [
    dict(width=12, layers=2, heads=3, hops=1, expansion=1),
    dict(width=16, layers=1, heads=2, hops=2, expansion=3),
    dict(width=18, layers=2, heads=3, hops=3, expansion=2),
    dict(width=32, layers=3, heads=2, hops=2, expansion=2),
    dict(width=20, layers=1, heads=5, hops=9, expansion=1),
]


@pytest.mark.parametrize("name", ["tree", "forest", "one_joint"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "w{width}h{heads}l{layers}".format(**c))
def test_matches_torch_on_small_skeletons(name, config):
    skeleton = small_skeletons()[name]
    model = perturbed(IKGAT(skeleton, **config), seed=config["width"])
    compiled = CompiledIKGAT(model)
    for batch in (1, 7, 100):
        positions = random_positions(skeleton, batch, seed=batch)
        got = compiled.bone_rotations(positions)
        assert np.abs(got - torch_forward(model, positions)).max() <= TOLERANCE, (name, batch)


def test_frames_are_independent_of_batch_and_threads(walk_model):
    """Each frame's arithmetic is the same wherever it falls in a block or a
    thread's range: results are bit-identical."""
    positions = random_positions(walk_model.skeleton, 300, seed=3)
    compiled = CompiledIKGAT(walk_model)
    before = fastkin.get_num_threads()
    try:
        fastkin.set_num_threads(2)
        together = compiled.bone_rotations(positions)
        fastkin.set_num_threads(1)
        alone = np.concatenate([compiled.bone_rotations(positions[i : i + 1]) for i in (0, 151, 299)])
    finally:
        fastkin.set_num_threads(before)
    np.testing.assert_array_equal(alone, together[[0, 151, 299]])


def test_concurrent_calls_match_serial(walk_model):
    """Several Python threads at once (the GIL is released; each thread has
    its own scratch), with the pool resized meanwhile."""
    compiled = CompiledIKGAT(walk_model)
    inputs = [random_positions(walk_model.skeleton, n, seed=n) for n in (1, 9, 200)]
    expected = [compiled.bone_rotations(x) for x in inputs]
    failures: list[str] = []

    def worker(seed: int) -> None:
        for i in np.random.default_rng(seed).permutation(len(inputs) * 3) % len(inputs):
            if not np.array_equal(compiled.bone_rotations(inputs[i]), expected[i]):
                failures.append(f"input {i} differs in thread {seed}")

    def resizer() -> None:
        for n in (1, 3, 2, 1, 2):
            fastkin.set_num_threads(n)

    before = fastkin.get_num_threads()
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)] + [threading.Thread(target=resizer)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        fastkin.set_num_threads(before)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not failures, failures[:3]


def test_empty_batch(walk_model):
    out = CompiledIKGAT(walk_model).bone_rotations(np.zeros((0, 38, 3), np.float32))
    assert out.shape == (0, 38, 3, 3)


def test_weights_are_copied(walk_model):
    """Later changes to the model are not seen (documented: build a new one)."""
    skeleton = small_skeletons()["tree"]
    model = perturbed(IKGAT(skeleton, width=16, layers=1, heads=2), seed=5)
    compiled = CompiledIKGAT(model)
    positions = random_positions(skeleton, 4, seed=0)
    before = compiled.bone_rotations(positions)
    with torch.no_grad():
        model.head_bias.add_(1.0)
    np.testing.assert_array_equal(compiled.bone_rotations(positions), before)


ISA_SCRIPT = """
import sys, numpy as np, torch, fastkin
from fastkin.learned import IKGAT, CompiledIKGAT
sys.path.insert(0, {tests!r})
from test_ikgat_inference import perturbed, random_positions, torch_forward, small_skeletons
errors = []
cases = [(fastkin.data.default_motion().skeleton, dict(width=64, layers=4, heads=4, hops=3, expansion=2)),
         (small_skeletons()["forest"], dict(width=18, layers=2, heads=3, hops=2, expansion=2)),
         (small_skeletons()["tree"], dict(width=32, layers=1, heads=4, hops=2, expansion=1))]
for skeleton, config in cases:
    # The 4-layer model gets walk_model's smaller noise.
    model = perturbed(IKGAT(skeleton, **config), seed=2, noise=0.05 if config["layers"] > 2 else 0.1)
    positions = random_positions(skeleton, 37, seed=4)
    errors.append(float(np.abs(CompiledIKGAT(model).bone_rotations(positions) - torch_forward(model, positions)).max()))
print("RESULT", fastkin.build_info()["isa"], max(errors))
"""


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_every_instruction_set_matches_torch(isa, tmp_path):
    """Each compiled kernel variant, capped with FASTKIN_ISA in a subprocess."""
    script = tmp_path / "run.py"
    script.write_text(ISA_SCRIPT.format(tests=os.path.dirname(__file__)))
    env = dict(os.environ, FASTKIN_ISA=isa)
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    used, error = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("RESULT")][0]
    if used != isa:
        pytest.skip(f"this CPU does not support {isa}")
    assert float(error) <= TOLERANCE


# -- bad input ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(walk_model) -> CompiledIKGAT:
    return CompiledIKGAT(walk_model)


@pytest.mark.parametrize("shape", [(4, 37, 3), (4, 38, 4), (38, 3), (2, 4, 38, 3)])
def test_wrong_shape_is_a_value_error(compiled, shape):
    with pytest.raises(ValueError, match=r"positions must have shape \(B, 38, 3\)"):
        compiled.bone_rotations(np.zeros(shape, np.float32))


def test_float64_is_a_type_error(compiled):
    with pytest.raises(TypeError, match="positions must have dtype float32, got float64"):
        compiled.bone_rotations(np.zeros((2, 38, 3)))


def test_non_contiguous_is_a_value_error(compiled):
    positions = np.zeros((2, 3, 38), np.float32).transpose(0, 2, 1)
    with pytest.raises(ValueError, match="positions must be C-contiguous"):
        compiled.bone_rotations(positions)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_positions_are_a_value_error(compiled, bad):
    positions = np.zeros((3, 38, 3), np.float32)
    positions[2, 17, 1] = bad
    with pytest.raises(ValueError, match="positions must be finite"):
        compiled.bone_rotations(positions)


def test_not_an_array_is_a_type_error(compiled):
    with pytest.raises(TypeError, match="positions must be a numpy array"):
        compiled.bone_rotations([[0.0, 0.0, 0.0]] * 38)
    with pytest.raises(TypeError, match="model must be a fastkin.learned.IKGAT"):
        CompiledIKGAT(torch.nn.Linear(2, 2))


def test_bad_out_is_an_error(compiled):
    positions = np.zeros((2, 38, 3), np.float32)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 38, 3, 3\)"):
        compiled._impl.forward(positions, np.zeros((2, 38, 9), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32, got float64"):
        compiled._impl.forward(positions, np.zeros((2, 38, 3, 3)))


def raw_weights(model: IKGAT) -> dict[str, np.ndarray]:
    weights = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items() if v.is_floating_point()}
    weights["parents"] = model.parents.numpy().astype(np.int32)
    weights["has_bone"] = model.has_bone.numpy()
    weights["blocked"] = model.blocked.numpy()
    return weights


def test_bad_weights_are_errors():
    model = perturbed(IKGAT(small_skeletons()["tree"], width=8, layers=2, heads=2), seed=0)
    good = raw_weights(model)
    _core.IKGATInference(good, 2, 2)
    with pytest.raises(ValueError, match=r"weights has no 'blocks.1.qkv.weight'"):
        _core.IKGATInference({k: v for k, v in good.items() if k != "blocks.1.qkv.weight"}, 2, 2)
    with pytest.raises(TypeError, match=r"weights\['head_bias'\] must have dtype float32, got float64"):
        _core.IKGATInference({**good, "head_bias": good["head_bias"].astype(np.float64)}, 2, 2)
    with pytest.raises(ValueError, match=r"weights\['blocks.0.out.bias'\] must have shape \(8,\)"):
        _core.IKGATInference({**good, "blocks.0.out.bias": np.zeros(9, np.float32)}, 2, 2)
    with pytest.raises(ValueError, match=r"weights\['norm.weight'\] holds NaN"):
        _core.IKGATInference({**good, "norm.weight": np.full(8, np.nan, np.float32)}, 2, 2)
    with pytest.raises(ValueError, match="heads .3. must divide width .8."):
        _core.IKGATInference(good, 3, 2)
    blocked = good["blocked"].copy()
    blocked[4] = True
    with pytest.raises(ValueError, match=r"blocked\[4\] masks every joint"):
        _core.IKGATInference({**good, "blocked": blocked}, 2, 2)
    with pytest.raises(TypeError, match=r"weights\['parents'\] must have dtype int32, got int64"):
        _core.IKGATInference({**good, "parents": good["parents"].astype(np.int64)}, 2, 2)


def test_docstring_example():
    result = doctest.testmod(fast_inference, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_given_features_embed_like_a_linear_map_and_are_checked():
    """from_positions=False: the tokens' F inputs come from the caller
    (PoseToRotation's path). With the position features given as such, the
    result is the positions path's; bad shapes and NaN are named errors."""
    model = perturbed(IKGAT(small_skeletons()["tree"], width=16, layers=2, heads=2), seed=3)
    positions = random_positions(model.skeleton, 5, seed=5)
    with torch.no_grad():
        features = model.features(torch.from_numpy(positions)).numpy()
    given = _core.IKGATInference(raw_weights(model), 2, 2, from_positions=False)
    got = np.empty((5, 8, 3, 3), np.float32)
    given.forward(np.ascontiguousarray(features), got)
    np.testing.assert_allclose(got, CompiledIKGAT(model).bone_rotations(positions), atol=1e-5)
    with pytest.raises(ValueError, match=r"features must have shape \(B, 8, 6\)"):
        given.forward(positions, got)
    features[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="features must be finite"):
        given.forward(features, got)
    wider = raw_weights(model) | {"embed_weight": np.zeros((8, 12, 16), np.float32)}
    with pytest.raises(ValueError, match=r"embed_weight'\] must have shape \(J, 6, W\)"):
        _core.IKGATInference(wider, 2, 2)
    assert _core.IKGATInference(wider, 2, 2, from_positions=False).flops_per_frame > given.flops_per_frame
