"""Bone frames on torch tensors: values, exact gradients, custom-op checks,
torch.compile, and the torch-native path used for non-CPU devices."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastkin  # noqa: E402
from fastkin._torch_bone_frames import (  # noqa: E402
    bone_world_to_local_native,
    right_multiply_op,
    world_to_local_backward_op,
    world_to_local_op,
)
from fastkin._torch_ops import fk_torch_native  # noqa: E402
from fastkin.bone_frames import frame_constants  # noqa: E402
from conftest import SMPL_PARENTS  # noqa: E402
from reference import local_matrices, random_quaternions  # noqa: E402

FOREST = [-1, 0, 1, 1, -1, 4, 0]


def make_case(parents, batch, dtype=torch.float64, seed=0, form="quat"):
    rng = np.random.default_rng(seed)
    skeleton = fastkin.Skeleton(parents, rng.normal(size=(len(parents), 3)), random_quaternions(rng, (len(parents),)))
    quats = random_quaternions(rng, batch + (len(parents),))
    rotations = quats if form == "quat" else local_matrices(quats, len(parents))
    return skeleton, torch.tensor(rotations, dtype=dtype, requires_grad=True)


def constants_of(skeleton):
    """C_j = W0_jᵀ A_j of the default frames, float64."""
    return torch.tensor(frame_constants(skeleton, None, np.float64))


@pytest.mark.parametrize("form", ["quat", "matrix"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_values_match_numpy(form, dtype):
    skeleton, rotations = make_case(SMPL_PARENTS, (3, 4), dtype, form=form)
    bone = fastkin.local_to_bone_world(skeleton, rotations)
    assert isinstance(bone, torch.Tensor) and bone.dtype == dtype and bone.shape == (3, 4, 24, 3, 3)
    expected = fastkin.local_to_bone_world(skeleton, rotations.detach().numpy())
    np.testing.assert_array_equal(bone.detach().numpy(), expected)
    local = fastkin.bone_world_to_local(skeleton, bone)
    assert local.dtype == dtype
    np.testing.assert_array_equal(local.detach().numpy(), fastkin.bone_world_to_local(skeleton, expected))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    matrices = local_matrices(rotations.detach().numpy().astype(np.float64), 24)
    np.testing.assert_allclose(local.detach().numpy(), matrices, atol=tolerance)


@pytest.mark.parametrize("form", ["quat", "matrix"])
def test_gradcheck_local_to_bone_world(form):
    skeleton, rotations = make_case(FOREST, (3,), form=form, seed=1)
    assert torch.autograd.gradcheck(
        lambda r: fastkin.local_to_bone_world(skeleton, r), (rotations,), eps=1e-6, atol=1e-7
    )


def test_gradcheck_bone_world_to_local():
    skeleton, rotations = make_case(FOREST, (2, 3), seed=2)
    bone = fastkin.local_to_bone_world(skeleton, rotations).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: fastkin.bone_world_to_local(skeleton, q), (bone,), eps=1e-6, atol=1e-7)
    # Off the rotation manifold too: the map is linear in Q.
    general = torch.randn(2, len(FOREST), 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: fastkin.bone_world_to_local(skeleton, q), (general,), eps=1e-6, atol=1e-7)


def test_gradgradcheck_right_multiply():
    """The right multiply's backward is the same op, so it differentiates twice."""
    constants = torch.randn(len(FOREST), 3, 3, dtype=torch.float64)
    matrices = torch.randn(2, len(FOREST), 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda m: right_multiply_op(m, constants, False), (matrices,))


def test_gradients_match_the_native_path_on_a_large_batch():
    """The C++ VJPs (threads included) against autograd through plain torch."""
    skeleton, rotations = make_case(SMPL_PARENTS, (1500,), seed=4)
    constants = constants_of(skeleton)
    weights = torch.randn(1500, 24, 3, 3, dtype=torch.float64)

    def native(r):
        world = fk_torch_native(SMPL_PARENTS, r, None, torch.tensor(skeleton.offsets))[0]
        return bone_world_to_local_native(SMPL_PARENTS, world @ constants * 1.5, constants)

    def compiled(r):
        return fastkin.bone_world_to_local(skeleton, fastkin.local_to_bone_world(skeleton, r) * 1.5)

    grad_native = torch.autograd.grad((native(rotations) * weights).sum(), rotations)[0]
    grad_kernel = torch.autograd.grad((compiled(rotations) * weights).sum(), rotations)[0]
    torch.testing.assert_close(grad_kernel, grad_native, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(compiled(rotations), native(rotations), rtol=0, atol=1e-12)


def test_opcheck_custom_ops():
    skeleton, _ = make_case(FOREST, (3,), seed=5, form="matrix")
    constants = constants_of(skeleton)
    parents = torch.tensor(FOREST, dtype=torch.int32)
    matrices = torch.randn(3, len(FOREST), 3, 3, dtype=torch.float64, requires_grad=True)
    for transpose in (False, True):
        torch.library.opcheck(right_multiply_op, (matrices, constants, transpose))
    torch.library.opcheck(right_multiply_op, (matrices.detach()[0].float(), constants.float(), False))
    torch.library.opcheck(world_to_local_op, (parents, matrices, constants))
    torch.library.opcheck(world_to_local_op, (parents, matrices.detach().float(), constants.float()))
    grad = torch.randn(3, len(FOREST), 3, 3, dtype=torch.float64)
    torch.library.opcheck(world_to_local_backward_op, (parents, matrices.detach(), constants, grad))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    skeleton, rotations = make_case(SMPL_PARENTS, (16,), torch.float32, seed=6)

    def step(r):
        bone = fastkin.local_to_bone_world(skeleton, r)
        local = fastkin.bone_world_to_local(skeleton, bone * 0.5 + bone.detach() * 0.5)
        return bone[..., 0].square().sum() + local[..., 0, 0].sum()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    compiled_value = compiled(rotations)  # first: the skeleton's constants are made while tracing
    compiled_grad = torch.autograd.grad(compiled_value, rotations)[0]
    eager_value = step(rotations)
    eager_grad = torch.autograd.grad(eager_value, rotations)[0]
    torch.testing.assert_close(compiled_value, eager_value)
    torch.testing.assert_close(compiled_grad, eager_grad)


def test_torch_compile_two_skeletons_custom_frames_and_dtypes():
    """Constants made while tracing, several in one graph."""
    skeleton, rotations = make_case(FOREST, (3,), seed=11)
    other, other_rotations = make_case(SMPL_PARENTS, (2,), torch.float32, seed=12)
    frames = fastkin.bone_frames(skeleton, primary_child={0: 6})

    def step(r, s):
        mine = fastkin.bone_world_to_local(
            skeleton, fastkin.local_to_bone_world(skeleton, r, frames=frames), frames=frames
        )
        theirs = fastkin.local_to_bone_world(other, s)
        return mine, theirs, fastkin.local_to_bone_world(skeleton, r)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for got, expected in zip(compiled(rotations, other_rotations), step(rotations, other_rotations)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_native_path_matches_the_kernels():
    skeleton, rotations = make_case(FOREST, (2, 3), seed=7, form="matrix")
    bone = fastkin.local_to_bone_world(skeleton, rotations).detach()
    constants = constants_of(skeleton)
    torch.testing.assert_close(
        bone_world_to_local_native(FOREST, bone, constants),
        fastkin.bone_world_to_local(skeleton, bone),
        rtol=0,
        atol=1e-14,
    )


def test_custom_frames_as_tensor():
    skeleton, rotations = make_case(FOREST, (4,), seed=8)
    frames = fastkin.bone_frames(skeleton, primary_child={0: 6})
    for given in (frames, torch.as_tensor(frames)):
        bone = fastkin.local_to_bone_world(skeleton, rotations, frames=given)
        np.testing.assert_array_equal(
            bone.detach().numpy(), fastkin.local_to_bone_world(skeleton, rotations.detach().numpy(), frames=frames)
        )
        back = fastkin.bone_world_to_local(skeleton, bone, frames=given)
        np.testing.assert_allclose(
            back.detach().numpy(), local_matrices(rotations.detach().numpy(), len(FOREST)), atol=1e-12
        )


def test_torch_bad_input_names_the_argument():
    skeleton, rotations = make_case(SMPL_PARENTS, (2,), seed=9)
    bone = fastkin.local_to_bone_world(skeleton, rotations).detach()
    with pytest.raises(TypeError, match="bone_rotations must be float32 or float64"):
        fastkin.bone_world_to_local(skeleton, bone.long())
    with pytest.raises(ValueError, match=r"bone_rotations must have shape \(\.\.\., 24, 3, 3\)"):
        fastkin.bone_world_to_local(skeleton, bone[:, :5])
    with pytest.raises(ValueError, match="rotations"):
        fastkin.local_to_bone_world(skeleton, rotations[..., :3])
    bad = bone.clone()
    bad[1, 3, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="bone_rotations must be finite"):
        fastkin.bone_world_to_local(skeleton, bad)
    bad_rotations = rotations.detach().clone()
    bad_rotations[0, 1, 2] = float("inf")
    with pytest.raises(ValueError, match="rotations must be finite"):
        fastkin.local_to_bone_world(skeleton, bad_rotations)
    with pytest.raises(ValueError, match="frames must have shape"):
        fastkin.bone_world_to_local(skeleton, bone, frames=torch.eye(3).expand(5, 3, 3))
    with pytest.raises(TypeError, match="skeleton must be a fastkin.Skeleton"):
        fastkin.bone_world_to_local(SMPL_PARENTS, bone)


def test_cuda_path_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    skeleton, rotations = make_case(SMPL_PARENTS, (64,), seed=10)
    on_gpu = rotations.detach().cuda().requires_grad_(True)
    bone_cpu = fastkin.local_to_bone_world(skeleton, rotations)
    bone_gpu = fastkin.local_to_bone_world(skeleton, on_gpu)
    torch.testing.assert_close(bone_gpu.cpu(), bone_cpu)
    local_cpu = fastkin.bone_world_to_local(skeleton, bone_cpu)
    local_gpu = fastkin.bone_world_to_local(skeleton, bone_gpu)
    torch.testing.assert_close(local_gpu.cpu(), local_cpu)
    weights = torch.randn(64, 24, 3, 3, dtype=torch.float64)
    grad_cpu = torch.autograd.grad((local_cpu * weights).sum(), rotations)[0]
    grad_gpu = torch.autograd.grad((local_gpu * weights.cuda()).sum(), on_gpu)[0]
    torch.testing.assert_close(grad_gpu.cpu(), grad_cpu)
