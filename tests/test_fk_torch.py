"""fk_batch on torch tensors: values, exact gradients, custom-op checks,
torch.compile, and the torch-native path used for non-CPU devices."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastkin  # noqa: E402
from fastkin._torch_ops import fk_backward_op, fk_op, fk_torch_native  # noqa: E402
from conftest import SMPL_PARENTS  # noqa: E402
from reference import fk_reference, random_quaternions  # noqa: E402

FOREST = [-1, 0, 1, 1, -1, 4, 0]


def make_inputs(parents, batch, dtype=torch.float64, seed=0, form="quat"):
    rng = np.random.default_rng(seed)
    skeleton = fastkin.Skeleton(parents, rng.normal(size=(len(parents), 3)))
    quats = random_quaternions(rng, batch + (len(parents),))
    if form == "matrix":
        from scipy.spatial.transform import Rotation

        rot = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(quats.shape[:-1] + (3, 3))
    else:
        rot = quats
    rotations = torch.tensor(rot, dtype=dtype, requires_grad=True)
    root = torch.tensor(rng.normal(size=batch + (3,)), dtype=dtype, requires_grad=True)
    offsets = torch.tensor(skeleton.offsets, dtype=dtype, requires_grad=True)
    return skeleton, rotations, root, offsets


@pytest.mark.parametrize("form", ["quat", "matrix"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_values_match_reference(form, dtype):
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (3, 4), dtype, form=form)
    world_r, world_p = fastkin.fk_batch(skeleton, rotations, root)
    assert isinstance(world_r, torch.Tensor) and world_r.dtype == dtype
    expected_r, expected_p = fk_reference(
        SMPL_PARENTS, offsets.detach().numpy(), rotations.detach().numpy(), root.detach().numpy()
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(world_r.detach().numpy(), expected_r, atol=tol * 10)
    np.testing.assert_allclose(world_p.detach().numpy(), expected_p, atol=tol * 10 * max(1, np.abs(expected_p).max()))


def test_torch_strided_views_and_inference_tensors_match_reference():
    # The ops hand the kernels numpy views of the tensors: a transposed
    # batch, a slice with a storage offset and inference-mode tensors must
    # all read (and write) the right memory.
    skeleton, rotations, root, _ = make_inputs(SMPL_PARENTS, (4, 5))
    base = rotations.detach()
    expected = fk_reference(SMPL_PARENTS, skeleton.offsets, base.numpy(), root.detach().numpy())
    transposed = base.transpose(0, 1).contiguous().transpose(0, 1)  # same values, non-contiguous
    assert not transposed.is_contiguous()
    for rots in (transposed, torch.cat([base[:1], base])[1:]):
        world_r, world_p = fastkin.fk_batch(skeleton, rots, root.detach())
        np.testing.assert_allclose(world_r.numpy(), expected[0], atol=1e-12)
        np.testing.assert_allclose(world_p.numpy(), expected[1], atol=1e-12)
    with torch.inference_mode():
        world_r, world_p = fastkin.fk_batch(skeleton, base.clone(), root.detach().clone())
    np.testing.assert_allclose(world_p.numpy(), expected[1], atol=1e-12)


@pytest.mark.parametrize("form", ["quat", "matrix"])
@pytest.mark.parametrize("batched_offsets", [False, True])
def test_gradcheck_rotations_root_and_offsets(form, batched_offsets):
    skeleton, rotations, root, offsets = make_inputs(FOREST, (3,), form=form, seed=4)
    if batched_offsets:
        offsets = offsets.detach().expand(3, -1, -1).clone().requires_grad_(True)

    def f(r, t, o):
        world_r, world_p = fastkin.fk_batch(skeleton, r, t, offsets=o)
        return world_r, world_p

    assert torch.autograd.gradcheck(f, (rotations, root, offsets), eps=1e-6, atol=1e-7)


def test_gradcheck_when_only_positions_are_used():
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (2,), seed=5)
    assert torch.autograd.gradcheck(
        lambda r: fastkin.fk_batch(skeleton, r)[1].sum(-1), (rotations,), eps=1e-6, atol=1e-7
    )


def test_gradients_match_torch_native_path_on_large_batch():
    """The C++ VJP (SIMD blocks, threads, the tail path) against autograd
    through the torch-native implementation."""
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (1000,), torch.float64, seed=6)
    weights_r = torch.randn(1000, 24, 3, 3, dtype=torch.float64)
    weights_p = torch.randn(1000, 24, 3, dtype=torch.float64)

    def loss(fk):
        world_r, world_p = fk(rotations, root, offsets)
        return (world_r * weights_r).sum() + (world_p * weights_p).sum()

    grads = torch.autograd.grad(
        loss(lambda r, t, o: fastkin.fk_batch(skeleton, r, t, offsets=o)), (rotations, root, offsets)
    )
    native = torch.autograd.grad(
        loss(lambda r, t, o: fk_torch_native(SMPL_PARENTS, r, t, o)), (rotations, root, offsets)
    )
    for g, n in zip(grads, native):
        torch.testing.assert_close(g, n, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("wanted", [(), ("root",), ("offsets",)])
def test_gradients_skipped_where_not_wanted_leave_the_rest_unchanged(wanted):
    """The backward skips the root's and the offsets' gradients when those
    inputs do not require them; the rotations' gradient (and whichever of
    the others is wanted) matches autograd through the torch-native path."""
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (37,), torch.float64, seed=12)
    weights_r = torch.randn(37, 24, 3, 3, dtype=torch.float64)
    weights_p = torch.randn(37, 24, 3, dtype=torch.float64)

    def grads(fk, r, t, o):
        world_r, world_p = fk(r, t, o)
        inputs = [r] + [x for x in (t, o) if x.requires_grad]
        return torch.autograd.grad((world_r * weights_r).sum() + (world_p * weights_p).sum(), inputs)

    native = lambda r, t, o: fk_torch_native(SMPL_PARENTS, r, t, o)  # noqa: E731
    expected = dict(zip(("rotations", "root", "offsets"), grads(native, rotations, root, offsets)))
    some = grads(
        lambda r, t, o: fastkin.fk_batch(skeleton, r, t, offsets=o),
        rotations,
        root.detach().requires_grad_("root" in wanted),
        offsets.detach().requires_grad_("offsets" in wanted),
    )
    assert len(some) == 1 + len(wanted)
    for name, g in zip(("rotations",) + wanted, some):
        torch.testing.assert_close(g, expected[name], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_kept_in_cache_equal_streamed_outputs(dtype):
    # Under autograd the op keeps large outputs in cache instead of streaming
    # them; both write paths must give the same bits (outputs of ~5 MB, past
    # the streaming threshold, and a ragged last block).
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (2501,), dtype, seed=9)
    parents = torch.tensor(SMPL_PARENTS, dtype=torch.int32)
    args = (parents, rotations.detach(), root.detach(), offsets.detach())
    streamed = fk_op(*args, False)
    cached = fk_op(*args, True)
    assert all(torch.equal(a, b) for a, b in zip(streamed, cached))
    expected_r, expected_p = fk_reference(SMPL_PARENTS, args[3].numpy(), args[1].numpy(), args[2].numpy())
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(cached[0].numpy(), expected_r, atol=tol * 10)
    np.testing.assert_allclose(cached[1].numpy(), expected_p, atol=tol * 10 * max(1, np.abs(expected_p).max()))


def test_native_path_matches_reference():
    skeleton, rotations, root, offsets = make_inputs(FOREST, (2, 3), seed=7)
    world_r, world_p = fk_torch_native(FOREST, rotations, root, offsets)
    expected_r, expected_p = fk_reference(
        FOREST, offsets.detach().numpy(), rotations.detach().numpy(), root.detach().numpy()
    )
    np.testing.assert_allclose(world_r.detach().numpy(), expected_r, atol=1e-12)
    np.testing.assert_allclose(world_p.detach().numpy(), expected_p, atol=1e-12)


@pytest.mark.parametrize("form", ["quat", "matrix"])
def test_opcheck_custom_ops(form):
    skeleton, rotations, root, offsets = make_inputs(FOREST, (3,), form=form, seed=8)
    parents = torch.tensor(FOREST, dtype=torch.int32)
    torch.library.opcheck(fk_op, (parents, rotations, root, offsets))
    torch.library.opcheck(fk_op, (parents, rotations, None, offsets))
    torch.library.opcheck(fk_op, (parents, rotations, root, offsets, True))
    grad_r = torch.randn(3, len(FOREST), 3, 3, dtype=torch.float64)
    grad_p = torch.randn(3, len(FOREST), 3, dtype=torch.float64)
    args = (parents, rotations.detach(), offsets.detach(), grad_r, grad_p)
    torch.library.opcheck(fk_backward_op, args)
    torch.library.opcheck(fk_backward_op, (parents, rotations.detach(), offsets.detach(), None, grad_p))
    torch.library.opcheck(fk_backward_op, args + (False, False))
    torch.library.opcheck(fk_backward_op, args + (True, False))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (16,), torch.float32, seed=9)

    def step(r, t):
        world_r, world_p = fastkin.fk_batch(skeleton, r, t)
        return (world_p**2).sum() + world_r[..., 0, 0].sum()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    eager_value = step(rotations, root)
    eager_grad = torch.autograd.grad(eager_value, rotations)[0]
    compiled_value = compiled(rotations, root)
    compiled_grad = torch.autograd.grad(compiled_value, rotations)[0]
    torch.testing.assert_close(compiled_value, eager_value)
    torch.testing.assert_close(compiled_grad, eager_grad)


def test_torch_bad_input_names_the_argument():
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (2,), seed=10)
    with pytest.raises(TypeError, match="rotations"):
        fastkin.fk_batch(skeleton, rotations.detach().long())
    with pytest.raises(TypeError, match="root_translation"):
        fastkin.fk_batch(skeleton, rotations, root.float())
    with pytest.raises(ValueError, match="offsets"):
        fastkin.fk_batch(skeleton, rotations, offsets=offsets[:5])
    with pytest.raises(ValueError, match="rotations"):
        fastkin.fk_batch(skeleton, rotations[..., :3])
    bad = rotations.detach().clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="rotations must be finite"):
        fastkin.fk_batch(skeleton, bad)


def test_cuda_path_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    skeleton, rotations, root, offsets = make_inputs(SMPL_PARENTS, (64,), seed=11)
    cpu = fastkin.fk_batch(skeleton, rotations, root)
    gpu = fastkin.fk_batch(skeleton, rotations.detach().cuda().requires_grad_(True), root.detach().cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(a, b.cpu())
