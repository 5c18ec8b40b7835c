"""lbs and dqs on torch tensors: values, exact gradients, custom-op checks,
torch.compile, and the torch-native path used for non-CPU devices."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastkin  # noqa: E402
from fastkin._torch_skinning import dual_quaternions, skin_backward_op, skin_op, skin_torch_native  # noqa: E402
from reference import dqs_reference, lbs_reference, random_rigid_transforms  # noqa: E402

SKINS = {"linear": fastkin.lbs, "dual_quaternion": fastkin.dqs}
REFERENCES = {"linear": lbs_reference, "dual_quaternion": dqs_reference}


def make_rig(batch=(2,), num_joints=6, num_vertices=20, k=3, dtype=torch.float64, seed=0, batched_vertices=False):
    rng = np.random.default_rng(seed)
    transforms = torch.tensor(random_rigid_transforms(rng, batch + (num_joints,)), dtype=dtype, requires_grad=True)
    shape = batch + (num_vertices, 3) if batched_vertices else (num_vertices, 3)
    vertices = torch.tensor(rng.normal(size=shape), dtype=dtype, requires_grad=True)
    joints = torch.tensor(rng.integers(0, num_joints, size=(num_vertices, k)), dtype=torch.int32)
    weights = torch.tensor(rng.random((num_vertices, k)) + 0.1, dtype=dtype)
    weights = (weights / weights.sum(-1, keepdim=True)).requires_grad_(True)
    return transforms, vertices, joints, weights


@pytest.mark.parametrize("method", SKINS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_values_match_reference(method, dtype):
    transforms, vertices, joints, weights = make_rig((3, 2), dtype=dtype)
    out = SKINS[method](transforms, vertices, joints, weights)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == (3, 2, 20, 3)
    expected = REFERENCES[method](
        transforms.detach().double().numpy(),
        vertices.detach().double().numpy(),
        joints.numpy(),
        weights.detach().double().numpy(),
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=tol * 10)


@pytest.mark.parametrize("method", SKINS)
@pytest.mark.parametrize("batched_vertices", [False, True])
def test_gradcheck_transforms_vertices_and_weights(method, batched_vertices):
    transforms, vertices, joints, weights = make_rig(batched_vertices=batched_vertices, seed=1)
    # Unnormalised weights exercise the division by their sum (and warn).
    weights = (weights.detach() * 1.5).requires_grad_(True)

    def f(t, v, w):
        return SKINS[method](t, v, joints, w)

    with pytest.warns(RuntimeWarning):
        assert torch.autograd.gradcheck(f, (transforms, vertices, weights), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", SKINS)
def test_gradcheck_normals(method):
    transforms, vertices, joints, weights = make_rig(seed=2)
    normals = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)

    def f(t, n):
        return SKINS[method](t, vertices.detach(), joints, weights.detach(), normals=n)[1]

    assert torch.autograd.gradcheck(f, (transforms, normals), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", SKINS)
def test_gradients_match_torch_native_path_on_large_mesh(method):
    """The C++ VJP (threads, blocks of 16 vertices, the tail) against autograd
    through the torch-native implementation."""
    transforms, vertices, joints, weights = make_rig((3,), num_joints=24, num_vertices=20000, k=4, seed=3)
    probe = torch.randn(3, 20000, 3, dtype=torch.float64)
    indices = joints.long()
    for points in (True, False):
        table = dual_quaternions(transforms) if method == "dual_quaternion" else transforms
        ours = torch.autograd.grad(
            (skin_op(method, table, vertices, joints, weights, points) * probe).sum(), (transforms, vertices, weights)
        )
        table = dual_quaternions(transforms) if method == "dual_quaternion" else transforms
        native = torch.autograd.grad(
            (skin_torch_native(method, table, vertices, indices, weights, points) * probe).sum(),
            (transforms, vertices, weights),
        )
        for a, b in zip(ours, native):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", SKINS)
@pytest.mark.parametrize("batched_vertices", [False, True])
def test_opcheck_custom_ops(method, batched_vertices):
    transforms, vertices, joints, weights = make_rig(batched_vertices=batched_vertices, seed=4)
    table = dual_quaternions(transforms).detach().requires_grad_(True) if method == "dual_quaternion" else transforms
    for points in (True, False):
        torch.library.opcheck(skin_op, (method, table, vertices, joints, weights, points))
        grad = torch.randn(2, 20, 3, dtype=torch.float64)
        args = (method, table.detach(), vertices.detach(), joints, weights.detach(), points, grad)
        torch.library.opcheck(skin_backward_op, args + (True, True))
        torch.library.opcheck(skin_backward_op, args + (False, False))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    transforms, vertices, joints, weights = make_rig((8,), dtype=torch.float32, seed=5)

    def step(t):
        return (fastkin.lbs(t, vertices, joints, weights) ** 2).sum()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    eager_value = step(transforms)
    eager_grad = torch.autograd.grad(eager_value, transforms)[0]
    compiled_value = compiled(transforms)
    compiled_grad = torch.autograd.grad(compiled_value, transforms)[0]
    torch.testing.assert_close(compiled_value, eager_value)
    torch.testing.assert_close(compiled_grad, eager_grad)


def test_native_path_matches_reference():
    transforms, vertices, joints, weights = make_rig((2,), seed=6)
    for method in SKINS:
        table = dual_quaternions(transforms) if method == "dual_quaternion" else transforms
        out = skin_torch_native(method, table, vertices, joints.long(), weights, True)
        expected = REFERENCES[method](
            transforms.detach().numpy(), vertices.detach().numpy(), joints.numpy(), weights.detach().numpy()
        )
        np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-12)


def test_torch_bad_input_names_the_argument():
    transforms, vertices, joints, weights = make_rig(seed=7)
    with pytest.raises(TypeError, match="transforms must be float32 or float64"):
        fastkin.lbs(transforms.detach().long(), vertices, joints, weights)
    with pytest.raises(TypeError, match="vertices has dtype torch.float32"):
        fastkin.lbs(transforms, vertices.float(), joints, weights)
    with pytest.raises(ValueError, match="joint_indices"):
        fastkin.lbs(transforms, vertices, joints + 100, weights)
    with pytest.raises(ValueError, match="weights"):
        fastkin.lbs(transforms, vertices, joints, -weights)
    bad = transforms.detach().clone()
    bad[0, 1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="transforms must be finite"):
        fastkin.lbs(bad, vertices, joints, weights)
    scaled = transforms.detach() * 2
    with pytest.raises(ValueError, match="not rigid"):
        fastkin.dqs(scaled, vertices, joints, weights)


def test_cuda_path_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    transforms, vertices, joints, weights = make_rig((4,), seed=8)
    for skin in SKINS.values():
        cpu = skin(transforms, vertices, joints, weights)
        gpu = skin(transforms.detach().cuda(), vertices.detach().cuda(), joints.cuda(), weights.detach().cuda())
        torch.testing.assert_close(cpu, gpu.cpu())
