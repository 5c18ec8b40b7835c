"""The compiled axis-angle -> quaternion kernels behind
fastkin.rotations.axis_angle_to_quat (numpy arrays and the torch custom ops):
values against scipy, gradients against finite differences and torch's
autograd through the array formulas, over every path of the kernel: the
series side of the gradient (angle < 0.1), each quadrant of the half angle's
reduction, angles past the vector reduction's range (libm), non-finite
input, partial blocks, strided input and threads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fastkin import rotations as rot

torch = pytest.importorskip("torch")

from fastkin._torch_rotations import axis_angle_to_quat_backward_op, axis_angle_to_quat_op  # noqa: E402

# Angles (radians) at the kernel's switches and in each quadrant of the half
# angle: the gradient's series ends at 0.1, the vector reduction at 2e6.
EDGE_ANGLES = [0.0, 1e-300, 1e-9, 1e-4, 0.0999, 0.1, 0.1001, 1.0, np.pi / 2, np.pi - 1e-9, np.pi, 4.0, 2 * np.pi]
EDGE_ANGLES += [3 * np.pi, 7.5, 100.0, 12345.6, 1.999e6, 2.0e6 + 10, 3e7, 1e12]


def axis_angles(rng, count: int) -> np.ndarray:
    """`count` axis-angles: the edge angles (about random axes), then random ones."""
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = rng.uniform(0.0, 4 * np.pi, size=count)
    edges = min(count, len(EDGE_ANGLES))
    angles[:edges] = EDGE_ANGLES[:edges]
    order = rng.permutation(count)  # edges land in every lane of a block
    return (axes * angles[:, None])[order]


def scipy_quat(v: np.ndarray) -> np.ndarray:
    flat = v.reshape(-1, 3).astype(np.float64)
    return Rotation.from_rotvec(flat).as_quat().reshape(v.shape[:-1] + (4,))


def tolerance(v: np.ndarray, dtype) -> np.ndarray:
    """Per row: a few roundings of the array's precision, plus the rounding of
    the angle computed in it (an error in the half angle of ~1 ulp of the
    angle, which grows with it; float32 arrays are computed in float)."""
    angle = np.linalg.norm(v.astype(np.float64), axis=-1, keepdims=True)
    return 1.2e-7 * (1 + angle) if dtype == np.float32 else 1e-15 + 2e-16 * angle


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 1000, 70_001])
def test_values_match_scipy(dtype, count):
    v = axis_angles(np.random.default_rng(count), count).astype(dtype)
    q = rot.axis_angle_to_quat(v)
    assert q.dtype == dtype and q.shape == (count, 4)
    error = np.abs(q.astype(np.float64) - scipy_quat(v))
    assert np.all(error <= tolerance(v, dtype)), float(np.max(error / tolerance(v, dtype)))
    qt = rot.axis_angle_to_quat(torch.from_numpy(v))
    np.testing.assert_array_equal(qt.numpy(), q)


def test_batch_shapes_strided_input_and_non_finite_rows():
    v = axis_angles(np.random.default_rng(1), 60).reshape(3, 4, 5, 3)
    strided = np.stack([v, v], axis=-2)[..., 1, :]  # not C-contiguous
    np.testing.assert_array_equal(rot.axis_angle_to_quat(strided), rot.axis_angle_to_quat(v.copy()))
    strided_t = torch.from_numpy(v).transpose(0, 1)
    np.testing.assert_array_equal(rot.axis_angle_to_quat(strided_t).numpy(), rot.axis_angle_to_quat(strided_t.numpy()))
    bad = v.reshape(-1, 3).copy()
    bad[[3, 17], 1] = [np.nan, np.inf]
    q = rot.axis_angle_to_quat(bad)
    assert np.isnan(q[[3, 17]]).any(axis=-1).all()
    others = np.setdiff1d(np.arange(len(bad)), [3, 17])
    np.testing.assert_array_equal(q[others], rot.axis_angle_to_quat(bad[others]))
    assert rot.axis_angle_to_quat(np.zeros((0, 3))).shape == (0, 4)


def test_gradient_matches_autograd_through_the_formulas():
    v = torch.from_numpy(axis_angles(np.random.default_rng(2), 333)).requires_grad_(True)
    weight = torch.from_numpy(np.random.default_rng(3).normal(size=(333, 4)))
    ours = torch.autograd.grad((rot.axis_angle_to_quat(v) * weight).sum(), v)[0]
    theirs = torch.autograd.grad((rot._axis_angle_to_quat_formula(v) * weight).sum(), v)[0]
    # The formulas' series switches at angle 1e-3, whose error is ~1e-13 there;
    # huge angles carry their own rounding (see tolerance).
    atol = 1e-12 + 1e-15 * v.detach().norm(dim=-1, keepdim=True)
    assert torch.all((ours - theirs).abs() <= atol), float(((ours - theirs).abs() / atol).max())


# Finite differences lose ~angle * 1e-10 to rounding: no huge angles here.
@pytest.mark.parametrize("angle", [0.0, 1e-9, 0.05, 0.0999, 0.1001, 1.0, np.pi, 4.0, 2 * np.pi, 2000.0])
def test_gradcheck_at_each_switch(angle):
    rng = np.random.default_rng(4)
    axes = rng.normal(size=(3, 3))
    v = axes / np.linalg.norm(axes, axis=-1, keepdims=True) * angle + (1e-3 * rng.normal(size=(3, 3)) if angle else 0)
    assert torch.autograd.gradcheck(rot.axis_angle_to_quat, (torch.tensor(v, requires_grad=True),), eps=1e-6, atol=1e-6)


def test_float32_gradient_matches_float64():
    """The float32 kernel (float arithmetic) against the float64 one on the
    same float32 inputs and output gradients."""
    rng = np.random.default_rng(5)
    v = torch.tensor(axis_angles(rng, 500) % 7.0, dtype=torch.float32, requires_grad=True)  # angles < 12.2
    weight = torch.tensor(rng.normal(size=(500, 4)), dtype=torch.float32)
    ours = torch.autograd.grad((rot.axis_angle_to_quat(v) * weight).sum(), v)[0]
    v64 = v.detach().double().requires_grad_(True)
    exact = torch.autograd.grad((rot.axis_angle_to_quat(v64) * weight.double()).sum(), v64)[0]
    assert ours.dtype == torch.float32
    atol = 2e-7 * (1 + v64.detach().norm(dim=-1, keepdim=True)) * weight.double().abs().sum(-1, keepdim=True)
    assert torch.all((ours.double() - exact).abs() <= atol), float(((ours.double() - exact).abs() / atol).max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_opcheck_custom_ops(dtype):
    v = torch.tensor(axis_angles(np.random.default_rng(7), 19), dtype=dtype, requires_grad=True)
    torch.library.opcheck(axis_angle_to_quat_op, (v,))
    torch.library.opcheck(axis_angle_to_quat_op, (v.detach().reshape(19, 1, 3),))
    grad = torch.randn(19, 4, dtype=dtype)
    torch.library.opcheck(axis_angle_to_quat_backward_op, (v.detach(), grad))


def test_torch_compile_fullgraph():
    v = torch.tensor(axis_angles(np.random.default_rng(8), 40), requires_grad=True)

    def step(x):
        return (rot.axis_angle_to_quat(x) ** 3).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    eager_value = step(v)
    compiled_value = compiled(v)
    torch.testing.assert_close(compiled_value, eager_value)
    torch.testing.assert_close(torch.autograd.grad(compiled_value, v)[0], torch.autograd.grad(eager_value, v)[0])
