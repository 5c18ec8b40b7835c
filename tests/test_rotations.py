"""Tests of fastkin.rotations against scipy.spatial.transform and hand-written
references: every conversion on numpy and torch, float64 and float32, batched
shapes, identity / 180 degree / tiny-angle edge cases, gimbal lock, gradients,
input validation and a few hypothesis properties."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from fastkin import rotations as rot

SEQUENCES = ["".join(s) for s in itertools.product("xyz", repeat=3) if s[0] != s[1] and s[1] != s[2]]
ORDERS = SEQUENCES + [s.upper() for s in SEQUENCES]  # 12 extrinsic + 12 intrinsic
assert len(SEQUENCES) == 12 and len(ORDERS) == 24

SHAPES = [(), (5,), (2, 3)]
CASES = [("numpy", np.float64), ("numpy", np.float32), ("torch", np.float64), ("torch", np.float32)]
CASE_IDS = [f"{b}-{np.dtype(d).name}" for b, d in CASES]
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def tol(dtype) -> float:
    return 1e-12 if dtype == np.float64 else 1e-5


# -- helpers ---------------------------------------------------------------------------------------


def to_backend(x, backend, dtype):
    """``x`` as an array of ``dtype`` in ``backend`` (a fresh copy)."""
    x = np.array(x, dtype=dtype)
    return torch.from_numpy(x) if backend == "torch" else x


def back(y, backend, dtype, allow_scalar=False):
    """Checks that ``y`` is the backend's array type with ``dtype`` and returns it as float64 numpy."""
    if backend == "torch":
        assert isinstance(y, torch.Tensor), type(y)
        assert y.dtype == TORCH_DTYPE[dtype], y.dtype
        return y.detach().numpy().astype(np.float64)
    if allow_scalar and isinstance(y, np.floating):
        y = np.asarray(y)
    assert isinstance(y, np.ndarray), type(y)
    assert y.dtype == dtype, y.dtype
    return y.astype(np.float64)


def exact(x, dtype):
    """The float64 values that ``x`` has once rounded to ``dtype`` (the reference's input)."""
    return np.asarray(x, dtype=dtype).astype(np.float64)


def rand_quats(rng, shape, scale=False):
    """Uniformly random rotations as xyzw quaternions of ``shape + (4,)`` with both signs of w;
    with ``scale`` they are not unit length."""
    q = rng.normal(size=tuple(shape) + (4,))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    if scale:
        q *= rng.uniform(0.3, 3.0, size=tuple(shape) + (1,))
    return q


def sp(q):
    """scipy Rotation of quaternions ``(..., 4)`` (flattened)."""
    return Rotation.from_quat(np.asarray(q, dtype=np.float64).reshape(-1, 4))


def sp_mat(m):
    return Rotation.from_matrix(np.asarray(m, dtype=np.float64).reshape(-1, 3, 3))


def canonical(q):
    """Unit quaternions with w >= 0."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def assert_quat_close(a, b, atol):
    """Equal up to the sign of the whole quaternion."""
    a = np.asarray(a).reshape(-1, 4)
    b = np.asarray(b).reshape(-1, 4)
    err = np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1))
    assert err.max(initial=0.0) <= atol, err.max()


def wrapped(a):
    """Angles mapped to (-pi, pi]."""
    return np.angle(np.exp(1j * np.asarray(a)))


def gram_schmidt(d):
    """Independent Gram-Schmidt of 6D vectors into matrices (columns b1, b2, b1 x b2)."""
    a1, a2 = d[..., :3], d[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.einsum("...i,...i->...", b1, a2)[..., None] * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


def is_proper(order):
    return order[0].lower() == order[2].lower()


def lock_middles(order):
    return [0.0, np.pi] if is_proper(order) else [np.pi / 2, -np.pi / 2]


def euler_samples(rng, order, n, margin=0.2):
    """Angles whose middle stays ``margin`` away from gimbal lock and whose outer angles stay off +-pi,
    so that they are the unique answer of matrix_to_euler."""
    a = rng.uniform(-np.pi + 0.01, np.pi - 0.01, size=(n, 3))
    if is_proper(order):
        a[:, 1] = rng.uniform(margin, np.pi - margin, size=n)
    else:
        a[:, 1] = rng.uniform(-np.pi / 2 + margin, np.pi / 2 - margin, size=n)
    return a


def random_axis(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


# Edge-case rotations as (axis, angle): identity, 180 degrees about x, y, z and a random axis, and tiny
# angles on both sides of each series switch (axis_angle_to_quat switches at angle 1e-3,
# quat_to_axis_angle at |xyz| = 1e-3, that is angle ~2e-3).
_EDGE_AXIS = random_axis(np.random.default_rng(7))
EDGE_ANGLES = [
    1e-9,
    1e-5,
    1e-3 * (1 - 1e-9),
    1e-3,
    1e-3 * (1 + 1e-9),
    2e-3 * (1 - 1e-9),
    2e-3,
    2e-3 * (1 + 1e-9),
    1e-2,
    1.9e-2,
    0.1,
]
EDGE_ROTVECS = (
    [np.zeros(3)]
    + [np.pi * np.eye(3)[k] for k in range(3)]
    + [np.pi * _EDGE_AXIS, -np.pi * _EDGE_AXIS]
    + [a * ax for a in EDGE_ANGLES for ax in (np.eye(3)[0], np.eye(3)[2], _EDGE_AXIS)]
)
EDGE_IDS = ["identity", "pi-x", "pi-y", "pi-z", "pi-random", "pi-random-neg"] + [
    f"{a:.10g}-{n}" for a in EDGE_ANGLES for n in ("x", "z", "random")
]


def edge_quat(v):
    """Exact-as-possible quaternion of rotation vector ``v`` (exactly [1, 0, 0, 0] etc. at 180 about an
    axis)."""
    angle = np.linalg.norm(v)
    if angle == 0:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = v / angle
    if angle == np.pi:
        return np.concatenate([axis, [0.0]])
    return np.concatenate([np.sin(angle / 2) * axis, [np.cos(angle / 2)]])


def edge_matrix(v):
    """Exact rotation matrix of ``v``: diagonal at 180 degrees about a coordinate axis."""
    angle = np.linalg.norm(v)
    if angle == np.pi and np.count_nonzero(v) == 1:
        return np.diag(np.where(v != 0, 1.0, -1.0))
    return Rotation.from_rotvec(v).as_matrix()


# -- conversions vs scipy --------------------------------------------------------------------------


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_to_matrix_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(1)
    q = rand_quats(rng, shape, scale=True)
    out = back(rot.quat_to_matrix(to_backend(q, backend, dtype)), backend, dtype)
    assert out.shape == shape + (3, 3)
    ref = sp(exact(q, dtype)).as_matrix().reshape(shape + (3, 3))
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matrix_to_quat_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(2)
    m = sp(rand_quats(rng, shape)).as_matrix().reshape(shape + (3, 3))
    out = back(rot.matrix_to_quat(to_backend(m, backend, dtype)), backend, dtype)
    assert out.shape == shape + (4,)
    assert np.all(out[..., 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=tol(dtype))
    ref = canonical(sp_mat(exact(m, dtype)).as_quat()).reshape(shape + (4,))
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_to_quat_compiled_matches_formula_path(dtype):
    """numpy input runs the compiled kernel (threaded for big batches), torch
    input the array formulas: the two agree on random rotations, on every
    half turn (where the candidate choice is a tie) and on strided input."""
    rng = np.random.default_rng(11)
    m = sp(rand_quats(rng, (70_000,))).as_matrix()
    half_turns = np.array([np.diag(d) for d in ([1, -1, -1], [-1, 1, -1], [-1, -1, 1])], float)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    m = np.concatenate([m, half_turns, Rotation.from_rotvec(np.pi * axes).as_matrix(), np.eye(3)[None]]).astype(dtype)
    strided = np.stack([m, m], axis=1)[:, 1]  # not C-contiguous
    compiled = rot.matrix_to_quat(strided)
    formulas = rot.matrix_to_quat(torch.from_numpy(m)).numpy()
    assert compiled.dtype == dtype and compiled.shape == (len(m), 4)
    np.testing.assert_allclose(compiled, formulas, rtol=0, atol=tol(dtype))
    assert np.isnan(rot.matrix_to_quat(np.full((3, 3), np.nan, dtype))).all()


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_axis_angle_to_quat_and_matrix_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(3)
    axis = rng.normal(size=shape + (3,))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    # angles past pi and past 2 pi as well: any rotation vector is valid input
    v = axis * rng.uniform(0.0, 3 * np.pi, size=shape + (1,))
    ref_r = Rotation.from_rotvec(exact(v, dtype).reshape(-1, 3))
    q = back(rot.axis_angle_to_quat(to_backend(v, backend, dtype)), backend, dtype)
    assert q.shape == shape + (4,)
    # scipy's from_rotvec keeps the sign of cos(angle / 2): the quaternions agree exactly, not up to sign
    np.testing.assert_allclose(q, ref_r.as_quat().reshape(shape + (4,)), rtol=0, atol=tol(dtype))
    m = back(rot.axis_angle_to_matrix(to_backend(v, backend, dtype)), backend, dtype)
    assert m.shape == shape + (3, 3)
    np.testing.assert_allclose(m, ref_r.as_matrix().reshape(shape + (3, 3)), rtol=0, atol=tol(dtype))


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_and_matrix_to_axis_angle_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(4)
    q = rand_quats(rng, shape, scale=True)  # both signs of w, not unit
    ref = sp(exact(q, dtype)).as_rotvec().reshape(shape + (3,))
    out = back(rot.quat_to_axis_angle(to_backend(q, backend, dtype)), backend, dtype)
    assert out.shape == shape + (3,)
    assert np.all(np.linalg.norm(out, axis=-1) <= np.pi + tol(dtype))
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))

    m = sp(q).as_matrix().reshape(shape + (3, 3))
    ref = sp_mat(exact(m, dtype)).as_rotvec().reshape(shape + (3,))
    out = back(rot.matrix_to_axis_angle(to_backend(m, backend, dtype)), backend, dtype)
    assert out.shape == shape + (3,)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
def test_euler_to_matrix_and_quat_vs_scipy(backend, dtype):
    rng = np.random.default_rng(5)
    shape = (2, 3)
    for order in ORDERS:
        angles = rng.uniform(-2 * np.pi, 2 * np.pi, size=shape + (3,))
        ref_r = Rotation.from_euler(order, exact(angles, dtype).reshape(-1, 3))
        m = back(rot.euler_to_matrix(to_backend(angles, backend, dtype), order), backend, dtype)
        assert m.shape == shape + (3, 3)
        np.testing.assert_allclose(m, ref_r.as_matrix().reshape(shape + (3, 3)), rtol=0, atol=tol(dtype), err_msg=order)
        q = back(rot.euler_to_quat(to_backend(angles, backend, dtype), order), backend, dtype)
        assert q.shape == shape + (4,)
        np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=tol(dtype), err_msg=order)
        assert_quat_close(q, ref_r.as_quat(), tol(dtype))


def test_euler_single_axis_conventions():
    """Independent of scipy: extrinsic 'xyz' is Rz(c) Ry(b) Rx(a), intrinsic 'XYZ' is Rx(a) Ry(b) Rz(c)."""

    def rx(t):
        c, s = np.cos(t), np.sin(t)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    def ry(t):
        c, s = np.cos(t), np.sin(t)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def rz(t):
        c, s = np.cos(t), np.sin(t)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    a, b, c = 0.3, -1.1, 2.4
    np.testing.assert_allclose(rot.euler_to_matrix(np.array([a, b, c]), "xyz"), rz(c) @ ry(b) @ rx(a), atol=1e-14)
    np.testing.assert_allclose(rot.euler_to_matrix(np.array([a, b, c]), "XYZ"), rx(a) @ ry(b) @ rz(c), atol=1e-14)
    np.testing.assert_allclose(rot.euler_to_matrix(np.array([a, b, c]), "zxz"), rz(c) @ rx(b) @ rz(a), atol=1e-14)
    np.testing.assert_allclose(rot.euler_to_matrix(np.array([a, b, c]), "ZXZ"), rz(a) @ rx(b) @ rz(c), atol=1e-14)
    # a 90 degree turn about z takes x to y (column vectors)
    np.testing.assert_allclose(
        rot.quat_to_matrix(np.array([0, 0, np.sqrt(0.5), np.sqrt(0.5)])) @ [1, 0, 0], [0, 1, 0], atol=1e-15
    )


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
def test_matrix_and_quat_to_euler_vs_scipy(backend, dtype):
    """Away from gimbal lock, all 24 orders: scipy's angles, which are also the angles the rotations
    were built from (unique in the documented ranges)."""
    rng = np.random.default_rng(6)
    for order in ORDERS:
        angles = euler_samples(rng, order, 6).reshape(2, 3, 3)
        r = Rotation.from_euler(order, angles.reshape(-1, 3))
        m = r.as_matrix().reshape(2, 3, 3, 3)
        q = r.as_quat().reshape(2, 3, 4)
        q = q * rng.choice([-1.0, 1.0], size=(2, 3, 1)) * rng.uniform(0.5, 2.0, size=(2, 3, 1))
        ref_m = sp_mat(exact(m, dtype)).as_euler(order).reshape(2, 3, 3)
        ref_q = sp(exact(q, dtype)).as_euler(order).reshape(2, 3, 3)
        for out, ref in [
            (rot.matrix_to_euler(to_backend(m, backend, dtype), order), ref_m),
            (rot.quat_to_euler(to_backend(q, backend, dtype), order), ref_q),
        ]:
            out = back(out, backend, dtype)
            assert out.shape == (2, 3, 3)
            np.testing.assert_allclose(wrapped(out - ref), 0.0, atol=tol(dtype), err_msg=order)
            np.testing.assert_allclose(wrapped(out - angles), 0.0, atol=tol(dtype) * 10, err_msg=order)
            assert np.all(np.abs(out) <= np.pi), order
            if is_proper(order):
                assert np.all((out[..., 1] >= 0) & (out[..., 1] <= np.pi)), order
            else:
                assert np.all(np.abs(out[..., 1]) <= np.pi / 2), order


def lock_samples(rng, order, offsets, n):
    """(len(lock_middles) * len(offsets) * n, 3) angles whose middle is ``offset`` inside each lock."""
    rows = []
    for middle in lock_middles(order):
        for offset in offsets:
            angles = rng.uniform(-np.pi, np.pi, size=(n, 3))
            angles[:, 1] = middle + (offset if middle <= 0 else -offset)
            rows.append(angles)
    return np.concatenate(rows)


def test_euler_round_trip_near_lock_float64():
    """Close to gimbal lock the angles are ill-conditioned but the rotation is not."""
    rng = np.random.default_rng(8)
    for order in ORDERS:
        m = Rotation.from_euler(order, lock_samples(rng, order, [1e-14, 1e-12, 1e-9, 1e-6, 1e-3], 4)).as_matrix()
        for out in [rot.matrix_to_euler(m, order), rot.quat_to_euler(rot.matrix_to_quat(m), order)]:
            np.testing.assert_allclose(Rotation.from_euler(order, out).as_matrix(), m, atol=1e-12, err_msg=order)
            np.testing.assert_allclose(rot.euler_to_matrix(out, order), m, atol=1e-12, err_msg=order)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_euler_gimbal_lock(backend):
    """At gimbal lock (all 24 orders) the third angle is 0 and the angles still reproduce the rotation."""
    rng = np.random.default_rng(9)
    for order in ORDERS:
        angles = lock_samples(rng, order, [0.0], 5)
        r = Rotation.from_euler(order, angles)
        m = r.as_matrix()
        for dtype in [np.float64, np.float32]:
            outs = [
                back(rot.matrix_to_euler(to_backend(m, backend, dtype), order), backend, dtype),
                back(rot.quat_to_euler(to_backend(r.as_quat(), backend, dtype), order), backend, dtype),
            ]
            for out in outs:
                assert np.all(np.isfinite(out)), order
                assert np.all(out[:, 2] == 0.0), (order, out)
                np.testing.assert_allclose(wrapped(out[:, 1] - angles[:, 1]), 0.0, atol=tol(dtype), err_msg=order)
                np.testing.assert_allclose(
                    Rotation.from_euler(order, out).as_matrix(), m, atol=tol(dtype), err_msg=order
                )
                again = rot.euler_to_matrix(to_backend(out, backend, dtype), order)
                np.testing.assert_allclose(back(again, backend, dtype), m, atol=tol(dtype), err_msg=order)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_euler_round_trip_near_lock_float32(backend):
    """float32 matrices at and near gimbal lock: matrix -> euler -> matrix within float32 accuracy."""
    rng = np.random.default_rng(10)
    f32 = np.float32
    for order in ORDERS:
        angles = lock_samples(rng, order, [0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3], 8)
        m = Rotation.from_euler(order, angles).as_matrix().astype(f32)
        for out in [
            rot.matrix_to_euler(to_backend(m, backend, f32), order),
            rot.quat_to_euler(rot.matrix_to_quat(to_backend(m, backend, f32)), order),
        ]:
            again = back(rot.euler_to_matrix(out, order), backend, f32)
            np.testing.assert_allclose(again, m, atol=1e-5, err_msg=order)


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_multiply_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(11)
    a = rand_quats(rng, shape)
    b = rand_quats(rng, shape)
    out = back(rot.quat_multiply(to_backend(a, backend, dtype), to_backend(b, backend, dtype)), backend, dtype)
    assert out.shape == shape + (4,)
    ref = (sp(exact(a, dtype)) * sp(exact(b, dtype))).as_quat().reshape(shape + (4,))
    # the Hamilton product of unit quaternions is exactly scipy's composition, sign included
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))
    # composition order: rotate by b, then by a
    m = sp(exact(a, dtype)).as_matrix() @ sp(exact(b, dtype)).as_matrix()
    np.testing.assert_allclose(rot.quat_to_matrix(out.reshape(-1, 4)), m, atol=10 * tol(dtype))


def test_quat_multiply_algebra_and_broadcast():
    i, j, k, one = np.eye(4)
    np.testing.assert_array_equal(rot.quat_multiply(i, j), k)
    np.testing.assert_array_equal(rot.quat_multiply(j, i), -k)
    np.testing.assert_array_equal(rot.quat_multiply(j, k), i)
    np.testing.assert_array_equal(rot.quat_multiply(k, k), -one)
    rng = np.random.default_rng(12)
    a = rand_quats(rng, (2, 3), scale=True)
    b = rand_quats(rng, (), scale=True)
    out = rot.quat_multiply(a, b)
    assert out.shape == (2, 3, 4)
    for idx in np.ndindex(2, 3):
        np.testing.assert_allclose(out[idx], rot.quat_multiply(a[idx], b), atol=1e-15)
    # not normalised: |a b| = |a| |b|
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(a, axis=-1) * np.linalg.norm(b), rtol=1e-14)


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_inverse_and_normalize(backend, dtype, shape):
    rng = np.random.default_rng(13)
    q = rand_quats(rng, shape, scale=True)
    qe = exact(q, dtype)
    inv = back(rot.quat_inverse(to_backend(q, backend, dtype)), backend, dtype)
    assert inv.shape == shape + (4,)
    norm2 = np.sum(qe * qe, axis=-1, keepdims=True)
    np.testing.assert_allclose(inv, qe * np.array([-1, -1, -1, 1]) / norm2, rtol=10 * tol(dtype), atol=0)
    assert_quat_close(canonical(inv), canonical(sp(qe).inv().as_quat()).reshape(shape + (4,)), tol(dtype))
    ident = rot.quat_multiply(qe, inv)
    np.testing.assert_allclose(ident, np.broadcast_to([0, 0, 0, 1.0], shape + (4,)), atol=10 * tol(dtype))
    unit = back(rot.quat_normalize(to_backend(q, backend, dtype)), backend, dtype)
    np.testing.assert_allclose(unit, qe / np.linalg.norm(qe, axis=-1, keepdims=True), rtol=0, atol=tol(dtype))


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_apply_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(14)
    q = rand_quats(rng, shape, scale=True)
    v = rng.normal(size=shape + (3,)) * 3
    out = back(rot.quat_apply(to_backend(q, backend, dtype), to_backend(v, backend, dtype)), backend, dtype)
    assert out.shape == shape + (3,)
    ref = sp(exact(q, dtype)).apply(exact(v, dtype).reshape(-1, 3)).reshape(shape + (3,))
    np.testing.assert_allclose(out, ref, rtol=0, atol=10 * tol(dtype))


def test_quat_apply_broadcast():
    rng = np.random.default_rng(15)
    q = rand_quats(rng, (5,))
    v = rng.normal(size=3)
    np.testing.assert_allclose(rot.quat_apply(q, v), sp(q).apply(v), atol=1e-12)
    vs = rng.normal(size=(4, 3))
    np.testing.assert_allclose(rot.quat_apply(q[0], vs), sp(q[:1]).apply(vs), atol=1e-12)


def slerp_reference(q0, q1, t):
    """scipy Slerp per pair; q0, q1 (n, 4), t (n,)."""
    out = []
    for a, b, tt in zip(q0, q1, t):
        out.append(Slerp([0.0, 1.0], Rotation.from_quat(np.stack([a, b])))([tt]).as_quat()[0])
    return np.array(out)


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quat_slerp_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(16)
    q0 = rand_quats(rng, shape, scale=True)
    q1 = rand_quats(rng, shape, scale=True)
    t = rng.uniform(0.0, 1.0, size=shape)
    out = back(
        rot.quat_slerp(to_backend(q0, backend, dtype), to_backend(q1, backend, dtype), to_backend(t, backend, dtype)),
        backend,
        dtype,
    )
    assert out.shape == shape + (4,)
    ref = slerp_reference(exact(q0, dtype).reshape(-1, 4), exact(q1, dtype).reshape(-1, 4), exact(t, dtype).reshape(-1))
    assert_quat_close(out, ref, 10 * tol(dtype))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=tol(dtype))
    # a python scalar t
    out = back(rot.quat_slerp(to_backend(q0, backend, dtype), to_backend(q1, backend, dtype), 0.3), backend, dtype)
    ref = slerp_reference(
        exact(q0, dtype).reshape(-1, 4), exact(q1, dtype).reshape(-1, 4), np.full(q0[..., 0].size, 0.3)
    )
    assert_quat_close(out, ref, 10 * tol(dtype))


def test_quat_slerp_endpoints_shortest_arc_and_t_broadcast():
    rng = np.random.default_rng(17)
    q0 = rand_quats(rng, (6,))
    q1 = rand_quats(rng, (6,))
    assert_quat_close(rot.quat_slerp(q0, q1, 0.0), q0, 1e-14)
    assert_quat_close(rot.quat_slerp(q0, q1, 1.0), q1, 1e-14)
    # -q1 is the same rotation: the path is the same
    assert_quat_close(rot.quat_slerp(q0, -q1, 0.4), rot.quat_slerp(q0, q1, 0.4), 1e-14)
    # the angle travelled is t times the (shortest) angle between them
    mid = rot.quat_slerp(q0, q1, 0.25)
    total = (sp(q0).inv() * sp(q1)).magnitude()
    np.testing.assert_allclose((sp(q0).inv() * sp(mid)).magnitude(), 0.25 * total, atol=1e-12)
    # identical inputs
    assert_quat_close(rot.quat_slerp(q0, q0, 0.7), q0, 1e-15)
    assert_quat_close(rot.quat_slerp(q0, -2.0 * q0, 0.7), q0, 1e-15)
    # one pair, many t
    ts = np.linspace(0.0, 1.0, 7)
    out = rot.quat_slerp(q0[0], q1[0], ts)
    assert out.shape == (7, 4)
    assert_quat_close(out, slerp_reference(np.repeat(q0[:1], 7, 0), np.repeat(q1[:1], 7, 0), ts), 1e-12)
    out = rot.quat_slerp(torch.from_numpy(q0[0]), torch.from_numpy(q1[0]), torch.from_numpy(ts))
    assert isinstance(out, torch.Tensor) and out.shape == (7, 4)


@pytest.mark.parametrize("angle", [1e-9, 1e-6, 1e-4, 1e-3, 1.5e-3, 2e-3, 2.8e-3, 3e-3, 1e-2, 0.05, 0.19, 0.3])
def test_quat_slerp_close_rotations_accurate(angle):
    """Nearby rotations: slerp must stay exact (to 1e-12), not degrade to a linear blend."""
    rng = np.random.default_rng(18)
    r0 = Rotation.from_quat(rand_quats(rng, (4,)))
    axes = rng.normal(size=(4, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    t = np.array([0.1, 0.25, 0.5, 0.8])
    r1 = r0 * Rotation.from_rotvec(angle * axes)
    expected = (r0 * Rotation.from_rotvec(t[:, None] * angle * axes)).as_quat()
    for backend in ["numpy", "torch"]:
        out = back(
            rot.quat_slerp(
                to_backend(r0.as_quat(), backend, np.float64),
                to_backend(r1.as_quat(), backend, np.float64),
                to_backend(t, backend, np.float64),
            ),
            backend,
            np.float64,
        )
        assert_quat_close(out, expected, 1e-14)


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_geodesic_angle_vs_scipy(backend, dtype, shape):
    rng = np.random.default_rng(19)
    q1 = rand_quats(rng, shape, scale=True)
    q2 = rand_quats(rng, shape, scale=True)
    ref = (sp(exact(q1, dtype)).inv() * sp(exact(q2, dtype))).magnitude().reshape(shape)
    out = back(
        rot.geodesic_angle(to_backend(q1, backend, dtype), to_backend(q2, backend, dtype)),
        backend,
        dtype,
        allow_scalar=True,
    )
    assert out.shape == shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))

    m1 = sp(q1).as_matrix().reshape(shape + (3, 3))
    m2 = sp(q2).as_matrix().reshape(shape + (3, 3))
    ref = (sp_mat(exact(m1, dtype)).inv() * sp_mat(exact(m2, dtype))).magnitude().reshape(shape)
    out = back(
        rot.geodesic_angle(to_backend(m1, backend, dtype), to_backend(m2, backend, dtype)),
        backend,
        dtype,
        allow_scalar=True,
    )
    assert out.shape == shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype))
    assert np.all((out >= 0) & (out <= np.pi))


def test_geodesic_angle_special_values():
    rng = np.random.default_rng(20)
    q = rand_quats(rng, (5,))
    m = sp(q).as_matrix()
    np.testing.assert_allclose(rot.geodesic_angle(m, m), 0.0, atol=1e-7)  # sqrt of roundoff
    np.testing.assert_allclose(rot.geodesic_angle(q, -q), 0.0, atol=1e-7)
    flipped = (sp(q) * Rotation.from_rotvec(np.pi * _EDGE_AXIS)).as_quat()
    np.testing.assert_allclose(rot.geodesic_angle(q, flipped), np.pi, atol=1e-12)
    np.testing.assert_allclose(rot.geodesic_angle(m, sp(flipped).as_matrix()), np.pi, atol=1e-7)
    for k in range(3):
        d = np.diag(np.where(np.arange(3) == k, 1.0, -1.0))
        assert rot.geodesic_angle(np.eye(3), d) == pytest.approx(np.pi, abs=1e-15)
        assert rot.geodesic_angle(np.eye(4)[3], np.eye(4)[k]) == pytest.approx(np.pi, abs=1e-15)
    assert rot.geodesic_angle(np.eye(3), np.eye(3)) == 0.0
    # broadcast: one against many
    np.testing.assert_allclose(rot.geodesic_angle(q[0], q), (sp(q[:1]).inv() * sp(q)).magnitude(), atol=1e-12)


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rot6d(backend, dtype, shape):
    rng = np.random.default_rng(21)
    m = sp(rand_quats(rng, shape)).as_matrix().reshape(shape + (3, 3))
    d = back(rot.matrix_to_rot6d(to_backend(m, backend, dtype)), backend, dtype)
    assert d.shape == shape + (6,)
    me = exact(m, dtype)
    np.testing.assert_array_equal(d, np.concatenate([me[..., :, 0], me[..., :, 1]], axis=-1))
    back_m = back(rot.rot6d_to_matrix(to_backend(d, backend, dtype)), backend, dtype)
    assert back_m.shape == shape + (3, 3)
    np.testing.assert_allclose(back_m, me, rtol=0, atol=tol(dtype) / 10 if dtype == np.float64 else tol(dtype))

    raw = rng.normal(size=shape + (6,)) * rng.uniform(0.1, 10.0, size=shape + (1,))
    out = back(rot.rot6d_to_matrix(to_backend(raw, backend, dtype)), backend, dtype)
    assert out.shape == shape + (3, 3)
    np.testing.assert_allclose(out, gram_schmidt(exact(raw, dtype)), rtol=0, atol=10 * tol(dtype))
    eye = np.broadcast_to(np.eye(3), shape + (3, 3))
    np.testing.assert_allclose(np.swapaxes(out, -1, -2) @ out, eye, atol=10 * tol(dtype))
    np.testing.assert_allclose(np.linalg.det(out), 1.0, atol=10 * tol(dtype))


# -- edge cases: identity, 180 degrees, tiny angles ---------------------------------------------------


def check_rows(err, limit, what):
    """Per-rotation errors ``err`` (N,) against ``limit`` (scalar or (N,)), naming the failing edge cases."""
    err = np.asarray(err, dtype=np.float64)
    bad = ~(err <= limit)  # NaN fails too
    assert not bad.any(), f"{what}: " + ", ".join(f"{EDGE_IDS[i]} ({err[i]:.3g})" for i in np.flatnonzero(bad))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_edge_rotations_all_conversions(backend):
    """Identity, exactly 180 degrees and tiny angles (both sides of each series switch), all at once."""
    v = np.array(EDGE_ROTVECS)
    angle = np.linalg.norm(v, axis=-1)
    at_pi = angle == np.pi
    q = np.array([edge_quat(x) for x in v])
    m = np.array([edge_matrix(x) for x in v])
    ref_r = Rotation.from_rotvec(v)
    ref_m = ref_r.as_matrix()
    f64 = np.float64

    def run(fn, *args):
        out = back(fn(*[to_backend(a, backend, f64) if isinstance(a, np.ndarray) else a for a in args]), backend, f64)
        check_rows(np.where(np.isfinite(out).reshape(len(v), -1).all(-1), 0.0, np.inf), 0.0, fn.__name__ + " finite")
        return out

    def row_err(a, b):
        return np.abs(np.asarray(a) - np.asarray(b)).reshape(len(v), -1).max(-1)

    def sign_err(a, b):
        return np.minimum(row_err(a, b), row_err(a, -np.asarray(b)))

    # to matrix
    check_rows(row_err(run(rot.quat_to_matrix, q), ref_m), 1e-15, "quat_to_matrix")
    check_rows(row_err(run(rot.axis_angle_to_matrix, v), ref_m), 1e-15, "axis_angle_to_matrix")
    check_rows(row_err(run(rot.rot6d_to_matrix, run(rot.matrix_to_rot6d, m)), m), 1e-15, "rot6d round trip")
    # to quaternion (scipy's from_rotvec is accurate to the last bits at tiny angles)
    ref_q = ref_r.as_quat()
    check_rows(
        row_err(run(rot.axis_angle_to_quat, v), ref_q) / (2e-15 * np.abs(ref_q).max(-1) + 4e-16),
        1.0,
        "axis_angle_to_quat",
    )
    mq = run(rot.matrix_to_quat, m)
    check_rows(-mq[:, 3], 0.0, "matrix_to_quat w >= 0")
    check_rows(sign_err(mq, q), 1e-15, "matrix_to_quat")
    not_half_turn = np.abs(q[:, 3]) > 1e-6
    check_rows(np.where(not_half_turn, row_err(mq, canonical(q)), 0.0), 1e-15, "matrix_to_quat hemisphere")
    # to axis-angle: full relative accuracy (~10 ulp) at tiny angles, where the series switch in; at 180
    # degrees either sign of the axis is right
    for name, out in [
        ("quat_to_axis_angle", run(rot.quat_to_axis_angle, q)),
        ("quat_to_axis_angle(-q)", run(rot.quat_to_axis_angle, -q)),
        ("matrix_to_axis_angle", run(rot.matrix_to_axis_angle, m)),
    ]:
        check_rows(np.where(at_pi, sign_err(out, v), row_err(out, v)), 2e-15 * np.maximum(angle, 1e-300), name)
        check_rows(np.abs(np.linalg.norm(out, axis=-1) - angle), 2e-15 * angle, name + " angle")
    # euler, every order: the angles reproduce the rotation (they are ambiguous at lock)
    for order in ORDERS:
        for e in [run(rot.matrix_to_euler, m, order), run(rot.quat_to_euler, q, order)]:
            check_rows(row_err(Rotation.from_euler(order, e).as_matrix(), ref_m), 1e-14, f"{order} vs scipy")
            check_rows(row_err(run(rot.euler_to_matrix, e, order), ref_m), 1e-14, f"{order} euler_to_matrix")
            check_rows(sign_err(run(rot.euler_to_quat, e, order), q), 1e-14, f"{order} euler_to_quat")
    # algebra
    ident = np.broadcast_to([0.0, 0, 0, 1], q.shape)
    check_rows(row_err(run(rot.quat_multiply, q, run(rot.quat_inverse, q)), ident), 1e-15, "q * q^-1")
    vec = np.array([0.3, -1.2, 2.0])
    check_rows(row_err(run(rot.quat_apply, q, vec), ref_r.apply(vec)), 1e-14, "quat_apply")
    check_rows(np.abs(run(rot.geodesic_angle, np.eye(3), m) - angle), 1e-12 * angle + 1e-15, "geodesic_angle matrices")
    check_rows(np.abs(run(rot.geodesic_angle, ident, q) - angle), 1e-12 * angle + 1e-15, "geodesic_angle quaternions")
    half = Rotation.from_rotvec(v / 2).as_quat()
    check_rows(sign_err(run(rot.quat_slerp, ident, q, 0.5), half), 1e-14, "quat_slerp from identity")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_edge_rotations_float32(backend):
    """Identity, 180 degrees and tiny angles in float32: finite, float32, right to ~1e-5."""
    f32 = np.float32
    for v in EDGE_ROTVECS:
        q, m = edge_quat(v), edge_matrix(v)
        ref_m = Rotation.from_rotvec(exact(v, f32)).as_matrix()
        outs = {
            "quat_to_matrix": (
                rot.quat_to_matrix(to_backend(q, backend, f32)),
                Rotation.from_quat(exact(q, f32)).as_matrix(),
            ),
            "axis_angle_to_matrix": (rot.axis_angle_to_matrix(to_backend(v, backend, f32)), ref_m),
            "euler": (rot.euler_to_matrix(rot.matrix_to_euler(to_backend(m, backend, f32), "zyx"), "zyx"), m),
            "matrix_to_axis_angle": (
                rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(to_backend(m, backend, f32))),
                m,
            ),
            "quat_to_axis_angle": (rot.axis_angle_to_matrix(rot.quat_to_axis_angle(to_backend(q, backend, f32))), m),
            "matrix_to_quat": (rot.quat_to_matrix(rot.matrix_to_quat(to_backend(m, backend, f32))), m),
        }
        for name, (out, ref) in outs.items():
            out = back(out, backend, f32)
            assert np.all(np.isfinite(out)), name
            np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=name)
        aa = back(rot.quat_to_axis_angle(to_backend(q, backend, f32)), backend, f32)
        if 0 < np.linalg.norm(v) < 1:
            np.testing.assert_allclose(aa, v, rtol=1e-5)


# -- gradients -------------------------------------------------------------------------------------


def t64(x, grad=True):
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


GRAD_ORDERS = ["xyz", "ZYX", "zxz", "YXY", "yzx", "XZX"]


def _gradcheck_cases():
    rng = np.random.default_rng(22)
    q = rand_quats(rng, (3,), scale=True)
    q2 = rand_quats(rng, (3,), scale=True)
    m = sp(rand_quats(rng, (3,))).as_matrix()
    # the second rotation of each geodesic pair is 0.5 to 2.5 rad away from the first (not 0, not pi)
    away = random_axis(rng) * rng.uniform(0.5, 2.5, size=(3, 1))
    m2 = m @ Rotation.from_rotvec(away).as_matrix()
    q_away = (sp(q) * Rotation.from_rotvec(away)).as_quat() * 0.8
    aa = rng.normal(size=(3, 3))
    tiny_aa = 1e-4 * rng.normal(size=(3, 3))
    tiny_q = np.concatenate([1e-4 * rng.normal(size=(3, 3)), np.array([[1.0], [-1.0], [2.0]])], axis=-1)
    close_q1 = (sp(q) * Rotation.from_rotvec(1e-4 * rng.normal(size=(3, 3)))).as_quat()
    cases = [
        ("quat_to_matrix", rot.quat_to_matrix, (q,)),
        ("matrix_to_quat", rot.matrix_to_quat, (m,)),
        ("axis_angle_to_quat", rot.axis_angle_to_quat, (aa,)),
        ("axis_angle_to_quat-series", rot.axis_angle_to_quat, (tiny_aa,)),
        ("quat_to_axis_angle", rot.quat_to_axis_angle, (q,)),
        ("quat_to_axis_angle-series", rot.quat_to_axis_angle, (tiny_q,)),
        ("axis_angle_to_matrix", rot.axis_angle_to_matrix, (aa,)),
        ("axis_angle_to_matrix-series", rot.axis_angle_to_matrix, (tiny_aa,)),
        ("matrix_to_axis_angle", rot.matrix_to_axis_angle, (m,)),
        ("matrix_to_rot6d", rot.matrix_to_rot6d, (m,)),
        ("rot6d_to_matrix", rot.rot6d_to_matrix, (rng.normal(size=(3, 6)),)),
        ("quat_multiply", rot.quat_multiply, (q, q2)),
        ("quat_inverse", rot.quat_inverse, (q,)),
        ("quat_normalize", rot.quat_normalize, (q,)),
        ("quat_slerp", rot.quat_slerp, (q, q2, rng.uniform(0.1, 0.9, size=3))),
        ("quat_slerp-close", rot.quat_slerp, (q, close_q1, rng.uniform(0.1, 0.9, size=3))),
        ("quat_apply", rot.quat_apply, (q, rng.normal(size=(3, 3)))),
        ("geodesic_angle-matrix", rot.geodesic_angle, (m, m2)),
        ("geodesic_angle-quat", rot.geodesic_angle, (q, q_away)),
    ]
    for order in GRAD_ORDERS:
        angles = euler_samples(rng, order, 3, margin=0.3)
        mats = Rotation.from_euler(order, angles).as_matrix()
        quats = Rotation.from_euler(order, angles).as_quat() * 1.7
        cases += [
            (f"euler_to_matrix-{order}", lambda a, o=order: rot.euler_to_matrix(a, o), (angles,)),
            (f"euler_to_quat-{order}", lambda a, o=order: rot.euler_to_quat(a, o), (angles,)),
            (f"matrix_to_euler-{order}", lambda x, o=order: rot.matrix_to_euler(x, o), (mats,)),
            (f"quat_to_euler-{order}", lambda x, o=order: rot.quat_to_euler(x, o), (quats,)),
        ]
    return cases


GRADCHECK_CASES = _gradcheck_cases()


@pytest.mark.parametrize("name,fn,args", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck(name, fn, args):
    inputs = tuple(t64(a) for a in args)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
    out = fn(*inputs)
    assert out.requires_grad


def test_geodesic_angle_derivative_along_a_rotation():
    """d angle / d t of R(t) = Rz(t) is 1, checked against autograd away from 0 and pi."""
    for t0 in [0.3, 1.5, 2.9]:
        t = t64(t0)
        m = rot.axis_angle_to_matrix(torch.stack([0.0 * t, 0.0 * t, t]))
        (g,) = torch.autograd.grad(rot.geodesic_angle(torch.eye(3, dtype=torch.float64), m), t)
        assert g.item() == pytest.approx(1.0, abs=1e-12)


def _singular_cases():
    """Inputs at identity and at 180 degrees (about x, y, z and a random axis) for every conversion."""
    axis = _EDGE_AXIS
    vs = [np.zeros(3)] + [np.pi * np.eye(3)[k] for k in range(3)] + [np.pi * axis]
    quats = np.array([edge_quat(v) for v in vs])
    mats = np.array([edge_matrix(v) for v in vs])
    vecs = np.array(vs)
    ident_q = np.broadcast_to(np.array([0.0, 0, 0, 1]), quats.shape).copy()
    ident_m = np.broadcast_to(np.eye(3), mats.shape).copy()
    cases = [
        ("quat_to_matrix", rot.quat_to_matrix, (quats,)),
        ("matrix_to_quat", rot.matrix_to_quat, (mats,)),
        ("axis_angle_to_quat", rot.axis_angle_to_quat, (vecs,)),
        ("quat_to_axis_angle", rot.quat_to_axis_angle, (quats,)),
        ("axis_angle_to_matrix", rot.axis_angle_to_matrix, (vecs,)),
        ("matrix_to_axis_angle", rot.matrix_to_axis_angle, (mats,)),
        ("matrix_to_rot6d", rot.matrix_to_rot6d, (mats,)),
        ("rot6d_to_matrix", rot.rot6d_to_matrix, (np.concatenate([mats[..., :, 0], mats[..., :, 1]], -1),)),
        ("quat_multiply", rot.quat_multiply, (quats, quats)),
        ("quat_inverse", rot.quat_inverse, (quats,)),
        ("quat_normalize", rot.quat_normalize, (quats,)),
        ("quat_slerp-from-identity", rot.quat_slerp, (ident_q, quats, np.full(len(vs), 0.5))),
        ("quat_slerp-same", rot.quat_slerp, (quats, quats, np.full(len(vs), 0.5))),
        ("quat_apply", rot.quat_apply, (quats, np.ones((len(vs), 3)))),
        ("geodesic_angle-matrix", rot.geodesic_angle, (ident_m, mats)),
        ("geodesic_angle-matrix-same", rot.geodesic_angle, (mats, mats)),
        ("geodesic_angle-quat", rot.geodesic_angle, (ident_q, quats)),
        ("geodesic_angle-quat-same", rot.geodesic_angle, (quats, quats)),
    ]
    euler_angles = np.array([[0.0, 0, 0], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], [np.pi, np.pi, 0]])

    def all_orders(fn):
        # every order at once: one output per order, stacked
        return lambda x: torch.stack([fn(x, order) for order in ORDERS])

    cases += [
        ("euler_to_matrix-all-orders", all_orders(rot.euler_to_matrix), (euler_angles,)),
        ("euler_to_quat-all-orders", all_orders(rot.euler_to_quat), (euler_angles,)),
        ("matrix_to_euler-all-orders", all_orders(rot.matrix_to_euler), (mats,)),
        ("quat_to_euler-all-orders", all_orders(rot.quat_to_euler), (quats,)),
    ]
    return cases


SINGULAR_CASES = _singular_cases()


@pytest.mark.parametrize("name,fn,args", SINGULAR_CASES, ids=[c[0] for c in SINGULAR_CASES])
def test_finite_gradients_at_identity_and_180(name, fn, args):
    inputs = tuple(t64(a) for a in args)
    out = fn(*inputs)
    assert torch.isfinite(out).all()
    weight = torch.from_numpy(np.random.default_rng(23).normal(size=tuple(out.shape)))
    grads = torch.autograd.grad((out * weight).sum(), inputs)
    for g in grads:
        assert g is not None
        assert torch.isfinite(g).all(), (name, g)


# -- bad input -------------------------------------------------------------------------------------

BAD_SHAPES = [
    (rot.quat_to_matrix, (np.zeros((5, 3)),), "quaternions"),
    (rot.matrix_to_quat, (np.zeros((5, 3, 4)),), "matrices"),
    (rot.matrix_to_quat, (np.zeros(9),), "matrices"),
    (rot.axis_angle_to_quat, (np.zeros(4),), "axis_angle"),
    (rot.quat_to_axis_angle, (np.zeros((2, 3)),), "quaternions"),
    (rot.axis_angle_to_matrix, (np.zeros((3, 3, 2)),), "axis_angle"),
    (rot.matrix_to_axis_angle, (np.zeros((4, 4)),), "matrices"),
    (rot.matrix_to_rot6d, (np.zeros((2, 3)),), "matrices"),
    (rot.rot6d_to_matrix, (np.zeros((2, 5)),), "rot6d"),
    (lambda a: rot.euler_to_matrix(a, "xyz"), (np.zeros(4),), "angles"),
    (lambda a: rot.euler_to_quat(a, "XYZ"), (np.zeros((2, 2)),), "angles"),
    (lambda m: rot.matrix_to_euler(m, "xyz"), (np.zeros((3, 2)),), "matrices"),
    (lambda q: rot.quat_to_euler(q, "zxz"), (np.zeros(3),), "quaternions"),
    (rot.quat_multiply, (np.zeros(3), np.zeros(4)), "a"),
    (rot.quat_multiply, (np.zeros(4), np.zeros((2, 5))), "b"),
    (rot.quat_inverse, (np.zeros(3),), "quaternions"),
    (rot.quat_normalize, (np.zeros(5),), "quaternions"),
    (lambda q0, q1: rot.quat_slerp(q0, q1, 0.5), (np.zeros(3), np.eye(4)[3]), "q0"),
    (lambda q0, q1: rot.quat_slerp(q0, q1, 0.5), (np.eye(4)[3], np.zeros((2, 3))), "q1"),
    (rot.quat_apply, (np.zeros(3), np.zeros(3)), "quaternions"),
    (rot.quat_apply, (np.eye(4)[3], np.zeros(4)), "vectors"),
    (rot.geodesic_angle, (np.eye(3), np.zeros((3, 4))), "r2"),
    (rot.geodesic_angle, (np.zeros((3, 2)), np.eye(3)), "r1"),
    (rot.geodesic_angle, (np.eye(4)[3], np.zeros(3)), "r2"),
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fn,args,name", BAD_SHAPES, ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD_SHAPES)])
def test_wrong_trailing_shape_raises_value_error_naming_argument(fn, args, name, backend):
    args = tuple(torch.from_numpy(a) if backend == "torch" else a for a in args)
    with pytest.raises(ValueError) as info:
        fn(*args)
    message = str(info.value)
    assert message.startswith(name + " "), message
    assert "shape" in message


ALL_UNARY = [
    ("quat_to_matrix", rot.quat_to_matrix, 4),
    ("matrix_to_quat", rot.matrix_to_quat, (3, 3)),
    ("axis_angle_to_quat", rot.axis_angle_to_quat, 3),
    ("quat_to_axis_angle", rot.quat_to_axis_angle, 4),
    ("axis_angle_to_matrix", rot.axis_angle_to_matrix, 3),
    ("matrix_to_axis_angle", rot.matrix_to_axis_angle, (3, 3)),
    ("matrix_to_rot6d", rot.matrix_to_rot6d, (3, 3)),
    ("rot6d_to_matrix", rot.rot6d_to_matrix, 6),
    ("euler_to_matrix", lambda a: rot.euler_to_matrix(a, "xyz"), 3),
    ("euler_to_quat", lambda a: rot.euler_to_quat(a, "ZXZ"), 3),
    ("matrix_to_euler", lambda m: rot.matrix_to_euler(m, "YZX"), (3, 3)),
    ("quat_to_euler", lambda q: rot.quat_to_euler(q, "yxy"), 4),
    ("quat_inverse", rot.quat_inverse, 4),
    ("quat_normalize", rot.quat_normalize, 4),
    ("quat_multiply", lambda q: rot.quat_multiply(q, q), 4),
    ("quat_slerp", lambda q: rot.quat_slerp(q, q, 0.5), 4),
    ("quat_apply", lambda q: rot.quat_apply(q, q[..., :3]), 4),
    ("geodesic_angle", lambda q: rot.geodesic_angle(q, q), 4),
]


@pytest.mark.parametrize("name,fn,last", ALL_UNARY, ids=[c[0] for c in ALL_UNARY])
def test_non_numeric_dtype_raises_type_error(name, fn, last):
    shape = (2,) + (last if isinstance(last, tuple) else (last,))
    for bad in [np.full(shape, "a"), np.full(shape, None, dtype=object), np.zeros(shape, dtype=np.complex128)]:
        with pytest.raises(TypeError):
            fn(bad)
    for bad in [torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.bool)]:
        with pytest.raises(TypeError):
            fn(bad)


@pytest.mark.parametrize("name,fn,last", ALL_UNARY, ids=[c[0] for c in ALL_UNARY])
def test_integer_numpy_input_becomes_float64(name, fn, last):
    shape = (2,) + (last if isinstance(last, tuple) else (last,))
    x = np.zeros(shape, dtype=np.int64)
    if last == 4:
        x[..., 3] = 1
    elif last == (3, 3):
        x[...] = np.eye(3, dtype=np.int64)
    elif last == 6:
        x[..., 0] = x[..., 4] = 1
    out = fn(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, fn(x.astype(np.float64)))


@pytest.mark.parametrize("bad", ["xy", "xxy", "xYz", "abc", "", "xyzx", "XXY", "xyy", "Xyz", "x y", 3, None])
def test_bad_euler_order_raises_value_error(bad):
    angles = np.zeros(3)
    q = np.array([0.0, 0, 0, 1])
    for call in [
        lambda: rot.euler_to_matrix(angles, bad),
        lambda: rot.euler_to_quat(angles, bad),
        lambda: rot.matrix_to_euler(np.eye(3), bad),
        lambda: rot.quat_to_euler(q, bad),
        lambda: rot.euler_to_quat(torch.zeros(3), bad),
    ]:
        with pytest.raises(ValueError, match="order"):
            call()


# -- types and dtypes ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend,dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name,fn,last", ALL_UNARY, ids=[c[0] for c in ALL_UNARY])
def test_type_and_dtype_preserved(name, fn, last, backend, dtype):
    rng = np.random.default_rng(24)
    shape = (2, 3) + (last if isinstance(last, tuple) else (last,))
    x = rng.normal(size=shape)
    if last == (3, 3):
        x = sp(rand_quats(rng, (6,))).as_matrix().reshape(shape)
    out = fn(to_backend(x, backend, dtype))
    back(out, backend, dtype)
    assert tuple(out.shape[:2]) == (2, 3)


def test_torch_float32_stays_float32_with_float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        rng = np.random.default_rng(25)
        q = torch.from_numpy(rand_quats(rng, (4,)).astype(np.float32))
        m = rot.quat_to_matrix(q)
        assert m.dtype == torch.float32
        for out in [
            rot.matrix_to_quat(m),
            rot.quat_to_axis_angle(q),
            rot.matrix_to_axis_angle(m),
            rot.quat_slerp(q, q.flip(0), 0.3),
            rot.matrix_to_euler(m, "XYZ"),
            rot.geodesic_angle(q, q.flip(0)),
        ]:
            assert out.dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)


def test_torch_outputs_are_differentiable_and_keep_device():
    q = t64(rand_quats(np.random.default_rng(26), (2,)))
    m = rot.quat_to_matrix(q)
    assert m.requires_grad and m.device == q.device
    e = rot.matrix_to_euler(m, "zyx")
    e.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


# -- hypothesis properties -------------------------------------------------------------------------

_component = st.one_of(
    st.floats(-1.0, 1.0, allow_nan=False),
    st.sampled_from([0.0, 1e-300, -1e-300, 1e-12, -1e-12, 1e-8, 1e-3, 1.0, -1.0, 0.5, -0.5]),
)


@st.composite
def quaternions(draw):
    q = np.array(draw(st.lists(_component, min_size=4, max_size=4)))
    n = np.linalg.norm(q)
    assume(n > 1e-6)
    return q * draw(st.sampled_from([1e-3, 0.5, 1.0, 7.0, 1e3])) / n


@settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(quaternions())
def test_property_quat_matrix_quat_round_trip(q):
    m = rot.quat_to_matrix(q)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(m, Rotation.from_quat(q).as_matrix(), atol=1e-14)
    back_q = rot.matrix_to_quat(m)
    assert back_q[3] >= 0
    assert_quat_close(back_q, q / np.linalg.norm(q), 1e-14)
    if abs(q[3]) / np.linalg.norm(q) > 1e-6:
        np.testing.assert_allclose(back_q, canonical(q), atol=1e-14)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=3, max_size=3),
    st.one_of(st.floats(0.0, np.pi - 1e-6), st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-3, 2e-3, np.pi - 1e-6])),
)
def test_property_axis_angle_round_trip(axis, angle):
    axis = np.array(axis)
    assume(np.linalg.norm(axis) > 1e-3)
    v = axis / np.linalg.norm(axis) * angle
    for out in [
        rot.quat_to_axis_angle(rot.axis_angle_to_quat(v)),
        rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v)),
    ]:
        # matrix -> axis-angle near pi is limited by the matrix's roundoff (1e-16 / sin(angle))
        np.testing.assert_allclose(out, v, rtol=1e-12, atol=1e-14 + 1e-15 / max(np.sin(angle), 1e-6) * angle)
        np.testing.assert_allclose(
            out, Rotation.from_rotvec(v).as_rotvec(), rtol=1e-12, atol=1e-14 + 1e-15 / max(np.sin(angle), 1e-6) * angle
        )


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(quaternions(), st.sampled_from(ORDERS))
def test_property_euler_round_trip(q, order):
    m = rot.quat_to_matrix(q)
    for e in [rot.matrix_to_euler(m, order), rot.quat_to_euler(q, order)]:
        assert np.all(np.isfinite(e)) and np.all(np.abs(e) <= np.pi)
        np.testing.assert_allclose(rot.euler_to_matrix(e, order), m, atol=1e-13)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about gimbal lock
            np.testing.assert_allclose(Rotation.from_euler(order, e).as_matrix(), m, atol=1e-13)


def _near_singular_gradcheck_cases():
    """Rotations just off identity (both sides of the series switch) and just
    short of 180 degrees, for every conversion that is smooth there."""
    rng = np.random.default_rng(31)
    axes = np.stack([random_axis(rng) for _ in range(3)])
    cases = []
    for label, angle in (("1e-5", 1e-5), ("1e-3", 1.0005e-3), ("pi-1e-2", np.pi - 1e-2)):
        vecs = axes * angle
        mats = Rotation.from_rotvec(vecs).as_matrix()
        quats = Rotation.from_rotvec(vecs).as_quat()
        near = Rotation.from_rotvec(vecs)
        other = (near * Rotation.from_rotvec(axes * 1e-3)).as_matrix()
        cases += [
            (f"quat_to_matrix-{label}", rot.quat_to_matrix, (quats,)),
            (f"matrix_to_quat-{label}", rot.matrix_to_quat, (mats,)),
            (f"axis_angle_to_quat-{label}", rot.axis_angle_to_quat, (vecs,)),
            (f"quat_to_axis_angle-{label}", rot.quat_to_axis_angle, (quats,)),
            (f"axis_angle_to_matrix-{label}", rot.axis_angle_to_matrix, (vecs,)),
            (f"matrix_to_axis_angle-{label}", rot.matrix_to_axis_angle, (mats,)),
            (f"matrix_to_rot6d-{label}", rot.matrix_to_rot6d, (mats,)),
            (
                f"rot6d_to_matrix-{label}",
                rot.rot6d_to_matrix,
                (np.concatenate([mats[..., :, 0], mats[..., :, 1]], -1),),
            ),
            (f"euler_to_matrix-XYZ-{label}", lambda a: rot.euler_to_matrix(a, "XYZ"), (vecs,)),
            (f"matrix_to_euler-xyz-{label}", lambda m: rot.matrix_to_euler(m, "xyz"), (mats,)),
            (f"geodesic_angle-{label}", rot.geodesic_angle, (mats, other)),
        ]
    return cases


NEAR_SINGULAR_CASES = _near_singular_gradcheck_cases()


@pytest.mark.parametrize("name,fn,args", NEAR_SINGULAR_CASES, ids=[c[0] for c in NEAR_SINGULAR_CASES])
def test_gradcheck_near_identity_and_180(name, fn, args):
    inputs = tuple(t64(a) for a in args)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-7, atol=1e-5, rtol=1e-4)
