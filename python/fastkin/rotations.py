"""Rotation conversions and quaternion algebra, for numpy arrays and torch
tensors alike (torch in -> torch out, differentiable).

Conventions (docs/conventions.md):

- quaternions are ``(..., 4)`` in **xyzw** order (scalar last, as glTF, scipy
  and Eigen's storage); functions that take a quaternion use ``q / |q|``;
- matrices are ``(..., 3, 3)`` and rotate column vectors (``v' = R @ v``);
- axis-angle is ``(..., 3)``: unit axis times angle in radians;
- 6D is ``(..., 6)``: the first two *columns* of the matrix,
  ``[R[:, 0], R[:, 1]]``, mapped back by Gram-Schmidt (Zhou et al. 2019);
- Euler orders are three letters as in scipy: lowercase ``"xyz"`` is
  extrinsic (about fixed axes, ``R = Rz(c) Ry(b) Rx(a)``), uppercase
  ``"XYZ"`` is intrinsic (about moving axes, ``R = Rx(a) Ry(b) Rz(c)``); all
  12 sequences (6 Tait-Bryan, 6 proper Euler) in both forms.

Every conversion returns finite values with finite gradients at identity and
at 180 degrees; ``matrix_to_quat`` returns the ``w >= 0`` hemisphere.

Example:
    >>> import numpy as np
    >>> from fastkin import rotations
    >>> q = rotations.axis_angle_to_quat(np.array([0.0, 0.0, np.pi / 2]))
    >>> np.round(rotations.quat_to_matrix(q), 6)
    array([[ 0., -1.,  0.],
           [ 1.,  0.,  0.],
           [ 0.,  0.,  1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._backend import as_float_array, namespace

__all__ = [
    "quat_to_matrix",
    "matrix_to_quat",
    "axis_angle_to_quat",
    "quat_to_axis_angle",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "rot6d_to_matrix",
    "euler_to_matrix",
    "matrix_to_euler",
    "euler_to_quat",
    "quat_to_euler",
    "quat_multiply",
    "quat_inverse",
    "quat_normalize",
    "quat_slerp",
    "quat_apply",
    "geodesic_angle",
]

# Below this angle (radians) axis-angle maps use their Taylor series, which
# keeps values and gradients finite at identity.
_SMALL_ANGLE = 1e-3


def quat_to_matrix(quaternions: Any) -> Any:
    """Rotation matrices ``(..., 3, 3)`` of xyzw quaternions ``(..., 4)``.

    The quaternion need not be unit length: the result is the rotation of
    ``q / |q|``.

    Example:
        >>> quat_to_matrix(np.array([0.0, 0.0, 0.0, 1.0]))  # identity
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
    """
    q = as_float_array(quaternions, "quaternions", (4,))
    xp = namespace(q)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / xp.sum(q * q, axis=-1)
    xx, yy, zz = x * x * s, y * y * s, z * z * s
    xy, xz, yz = x * y * s, x * z * s, y * z * s
    wx, wy, wz = w * x * s, w * y * s, w * z * s
    rows = [
        1.0 - (yy + zz), xy - wz, xz + wy,
        xy + wz, 1.0 - (xx + zz), yz - wx,
        xz - wy, yz + wx, 1.0 - (xx + yy),
    ]  # fmt: skip
    return xp.stack(rows, -1).reshape(tuple(q.shape[:-1]) + (3, 3))


def matrix_to_quat(matrices: Any) -> Any:
    """Unit xyzw quaternions ``(..., 4)`` with ``w >= 0`` of rotation
    matrices ``(..., 3, 3)``.

    Uses the best-conditioned of the four classical formulas per matrix
    (Shepperd's method), so it is accurate and differentiable up to and
    including 180 degrees.

    Example:
        >>> matrix_to_quat(np.diag([1.0, -1.0, -1.0]))  # 180 degrees about x
        array([1., 0., 0., 0.])
    """
    m = as_float_array(matrices, "matrices", (3, 3))
    if isinstance(m, np.ndarray) and m.dtype in (np.float32, np.float64):  # the compiled kernel, same formulas
        out = np.empty(m.shape[:-2] + (4,), m.dtype)
        _core.matrix_to_quat(np.ascontiguousarray(m), out)
        return out
    xp = namespace(m)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Each candidate is 4 * q_k * q for the component k it is built around.
    candidates = [
        xp.stack([1.0 + m00 - m11 - m22, m01 + m10, m02 + m20, m21 - m12], -1),
        xp.stack([m01 + m10, 1.0 + m11 - m00 - m22, m12 + m21, m02 - m20], -1),
        xp.stack([m02 + m20, m12 + m21, 1.0 + m22 - m00 - m11, m10 - m01], -1),
        xp.stack([m21 - m12, m02 - m20, m10 - m01, 1.0 + m00 + m11 + m22], -1),
    ]
    diagonal = xp.stack([c[..., k] for k, c in enumerate(candidates)], -1)
    best = xp.argmax(diagonal, -1)[..., None]
    # Select before normalising: the chosen candidate has norm >= 1, the others
    # may be zero and must not reach a division (even in the gradient).
    chosen = candidates[3]
    for k in range(3):
        chosen = xp.where(best == k, candidates[k], chosen)
    q = chosen / xp.sqrt(xp.sum(chosen * chosen, -1, keepdims=True))
    return xp.where(q[..., 3:] < 0, -q, q)  # flip by selection: keeps q's dtype


def axis_angle_to_quat(axis_angle: Any) -> Any:
    """xyzw quaternions ``(..., 4)`` of axis-angle vectors ``(..., 3)``.

    Example:
        >>> axis_angle_to_quat(np.array([np.pi, 0.0, 0.0])).round(6)
        array([1., 0., 0., 0.])
    """
    v = as_float_array(axis_angle, "axis_angle", (3,))
    if isinstance(v, np.ndarray):
        if v.dtype in (np.float32, np.float64):  # the compiled kernel
            out = np.empty(v.shape[:-1] + (4,), v.dtype)
            _core.axis_angle_to_quat(np.ascontiguousarray(v), out)
            return out
    elif v.device.type == "cpu" and v.element_size() in (4, 8):  # float32, float64
        from ._torch_rotations import axis_angle_to_quat_op  # C++ forward and backward

        return axis_angle_to_quat_op(v)
    return _axis_angle_to_quat_formula(v)


def _axis_angle_to_quat_formula(v: Any) -> Any:
    """axis_angle_to_quat in array operations (numpy or torch, any float
    dtype or device; torch's autograd through it): the path for what the
    compiled kernel does not take."""
    xp = namespace(v)
    theta2 = xp.sum(v * v, -1, keepdims=True)
    big = theta2 > _SMALL_ANGLE**2
    theta = xp.sqrt(xp.where(big, theta2, 1.0))
    half = 0.5 * theta
    scale = xp.where(big, xp.sin(half) / theta, 0.5 - theta2 / 48.0 + theta2 * theta2 / 3840.0)
    w = xp.where(big, xp.cos(half), 1.0 - theta2 / 8.0 + theta2 * theta2 / 384.0)
    return xp.concat([v * scale, w], -1)


def quat_to_axis_angle(quaternions: Any) -> Any:
    """Axis-angle vectors ``(..., 3)`` (angle in ``[0, pi]``) of xyzw
    quaternions ``(..., 4)``.

    Example:
        >>> quat_to_axis_angle(np.array([0.0, 0.0, 1.0, 0.0])).round(6)  # 180 deg about z
        array([0.      , 0.      , 3.141593])
    """
    q = as_float_array(quaternions, "quaternions", (4,))
    xp = namespace(q)
    q = quat_normalize(q)
    q = xp.where(q[..., 3:] < 0, -q, q)
    v, w = q[..., :3], q[..., 3:]
    s2 = xp.sum(v * v, -1, keepdims=True)
    big = s2 > _SMALL_ANGLE**2
    s = xp.sqrt(xp.where(big, s2, 1.0))
    w_small = xp.where(big, 1.0, w)
    x2 = s2 / (w_small * w_small)
    # angle / s, where angle = 2 atan2(s, w); series of 2 atan(x) / (x w) for small s.
    scale = xp.where(big, 2.0 * xp.atan2(s, w) / s, 2.0 / w_small * (1.0 - x2 / 3.0 + x2 * x2 / 5.0))
    return v * scale


def axis_angle_to_matrix(axis_angle: Any) -> Any:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)``.

    Example:
        >>> axis_angle_to_matrix(np.zeros(3))
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
    """
    return quat_to_matrix(axis_angle_to_quat(axis_angle))


def matrix_to_axis_angle(matrices: Any) -> Any:
    """Axis-angle vectors ``(..., 3)`` of rotation matrices ``(..., 3, 3)``.

    Example:
        >>> matrix_to_axis_angle(np.eye(3))
        array([0., 0., 0.])
    """
    return quat_to_axis_angle(matrix_to_quat(matrices))


def matrix_to_rot6d(matrices: Any) -> Any:
    """6D rotation representation ``(..., 6)``: the first two columns
    ``[R[:, 0], R[:, 1]]`` of matrices ``(..., 3, 3)``.

    Example:
        >>> matrix_to_rot6d(np.eye(3))
        array([1., 0., 0., 0., 1., 0.])
    """
    m = as_float_array(matrices, "matrices", (3, 3))
    return namespace(m).concat([m[..., :, 0], m[..., :, 1]], -1)


def rot6d_to_matrix(rot6d: Any) -> Any:
    """Rotation matrices ``(..., 3, 3)`` from 6D vectors ``(..., 6)`` by
    Gram-Schmidt: column 0 is the first 3-vector normalised, column 1 the
    second made orthogonal to it and normalised, column 2 their cross product.

    Example:
        >>> rot6d_to_matrix(np.array([2.0, 0.0, 0.0, 1.0, 3.0, 0.0]))
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
    """
    d = as_float_array(rot6d, "rot6d", (6,))
    xp = namespace(d)
    a1, a2 = d[..., 0:3], d[..., 3:6]
    b1 = a1 / xp.sqrt(xp.sum(a1 * a1, -1, keepdims=True))
    b2 = a2 - xp.sum(b1 * a2, -1, keepdims=True) * b1
    b2 = b2 / xp.sqrt(xp.sum(b2 * b2, -1, keepdims=True))
    return xp.stack([b1, b2, _cross(xp, b1, b2)], -1)


def euler_to_matrix(angles: Any, order: str) -> Any:
    """Rotation matrices ``(..., 3, 3)`` of Euler angles ``(..., 3)`` in
    radians. ``order`` is e.g. ``"xyz"`` (extrinsic) or ``"ZXY"`` (intrinsic),
    any of the 12 sequences; the angles are listed in the order's order.

    Example:
        >>> euler_to_matrix(np.array([0.0, 0.0, np.pi / 2]), "XYZ").round(6)
        array([[ 0., -1.,  0.],
               [ 1.,  0.,  0.],
               [ 0.,  0.,  1.]])
    """
    return quat_to_matrix(euler_to_quat(angles, order))


def matrix_to_euler(matrices: Any, order: str) -> Any:
    """Euler angles ``(..., 3)`` in radians of rotation matrices
    ``(..., 3, 3)`` for ``order`` (see :func:`euler_to_matrix`). The middle
    angle is in ``[-pi/2, pi/2]`` (Tait-Bryan) or ``[0, pi]`` (proper Euler);
    at gimbal lock the third angle is set to 0.

    Example:
        >>> matrix_to_euler(euler_to_matrix(np.array([0.1, 0.2, 0.3]), "zyx"), "zyx").round(6)
        array([0.1, 0.2, 0.3])
    """
    return quat_to_euler(matrix_to_quat(matrices), order)


def euler_to_quat(angles: Any, order: str) -> Any:
    """xyzw quaternions ``(..., 4)`` of Euler angles ``(..., 3)``; see
    :func:`euler_to_matrix` for ``order``.

    Example:
        >>> euler_to_quat(np.array([np.pi, 0.0, 0.0]), "xyz").round(6)
        array([1., 0., 0., 0.])
    """
    axes, extrinsic = _parse_order(order)
    a = as_float_array(angles, "angles", (3,))
    xp = namespace(a)
    # Intrinsic: q = q1 q2 q3. Extrinsic: the first rotation is applied first,
    # so it is rightmost: q = q3 q2 q1.
    steps = [(axes[k], a[..., k]) for k in ((2, 1, 0) if extrinsic else (0, 1, 2))]
    axis, angle = steps[0]
    zero = 0.0 * angle
    q = [zero, zero, zero, xp.cos(0.5 * angle)]
    q[axis] = xp.sin(0.5 * angle)
    for axis, angle in steps[1:]:
        q = _times_axis_rotation(q, axis, xp.sin(0.5 * angle), xp.cos(0.5 * angle))
    return xp.stack(q, -1)


def quat_to_euler(quaternions: Any, order: str) -> Any:
    """Euler angles ``(..., 3)`` of xyzw quaternions ``(..., 4)``; see
    :func:`matrix_to_euler`.

    Uses the direct quaternion method of Bernardes and Viollet (2022), which
    covers all 12 sequences with one formula.

    Example:
        >>> quat_to_euler(np.array([0.0, 0.0, 0.0, 1.0]), "ZYX")
        array([0., 0., 0.])
    """
    axes, extrinsic = _parse_order(order)
    q = quat_normalize(as_float_array(quaternions, "quaternions", (4,)))
    xp = namespace(q)
    if not extrinsic:
        axes = axes[::-1]  # an intrinsic sequence is the reversed extrinsic one
    i, j, k = axes
    proper = i == k
    if proper:
        k = 3 - i - j
    sign = (i - j) * (j - k) * (k - i) // 2
    w = q[..., 3]
    if proper:
        a, b, c, d = w, q[..., i], q[..., j], q[..., k] * sign
    else:
        a, b, c, d = w - q[..., j], q[..., i] + q[..., k] * sign, q[..., j] + w, q[..., k] * sign - q[..., i]
    cd2, ab2 = c * c + d * d, a * a + b * b
    middle = 2.0 * _safe_atan2(xp, _safe_sqrt(xp, cd2), _safe_sqrt(xp, ab2))
    half_sum = _safe_atan2(xp, b, a)
    half_diff = _safe_atan2(xp, d, c)
    # Exact gimbal lock leaves c, d (or a, b) at a few ulps; a wider window would cost accuracy, as
    # zeroing the third angle moves the rotation by about the middle angle's distance from the lock.
    lock = 10.0 * xp.eps(q)
    near_zero = cd2 <= lock * lock  # middle angle ~ 0
    near_pi = ab2 <= lock * lock  # middle angle ~ pi
    # At gimbal lock only first + third (middle ~ 0) or first - third (middle ~ pi) is determined;
    # the sequence's own third angle (the first one here when intrinsic, reversed) is set to 0.
    locked = near_zero | near_pi
    lock_angle = xp.where(near_zero, 2.0 * half_sum, (-2.0 if extrinsic else 2.0) * half_diff)
    zero = 0.0 * half_sum
    first = xp.where(locked, lock_angle if extrinsic else zero, half_sum - half_diff)
    third = xp.where(locked, zero if extrinsic else lock_angle, half_sum + half_diff)
    if not proper:
        third = third * sign
        middle = middle - xp.pi / 2
    # An intrinsic sequence's angles are the reversed extrinsic ones.
    angles = [first, middle, third] if extrinsic else [third, middle, first]
    return _wrap_angle(xp, xp.stack(angles, -1))


def quat_multiply(a: Any, b: Any) -> Any:
    """Hamilton product ``a * b`` of xyzw quaternions (rotate by b, then a).

    Example:
        >>> i = np.array([1.0, 0.0, 0.0, 0.0])
        >>> quat_multiply(i, i)  # i^2 = -1
        array([ 0.,  0.,  0., -1.])
    """
    a = as_float_array(a, "a", (4,))
    b = as_float_array(b, "b", (4,))
    xp = namespace(a)
    ax, ay, az, aw = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bz, bw = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    # Written out per component: one stack at the end instead of a cross
    # product, a dot product and a concatenation (several times faster).
    return xp.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        -1,
    )


def quat_inverse(quaternions: Any) -> Any:
    """Inverse ``q^-1 = conj(q) / |q|^2`` of xyzw quaternions.

    Example:
        >>> quat_inverse(np.array([0.0, 0.0, 1.0, 1.0]))
        array([ 0. ,  0. , -0.5,  0.5])
    """
    q = as_float_array(quaternions, "quaternions", (4,))
    xp = namespace(q)
    conj = xp.concat([0.0 - q[..., :3], q[..., 3:]], -1)  # 0 - x: no -0.0 for a zero component
    return conj / xp.sum(q * q, -1, keepdims=True)


def quat_normalize(quaternions: Any) -> Any:
    """Unit quaternions ``q / |q|``.

    Example:
        >>> quat_normalize(np.array([0.0, 0.0, 0.0, 2.0]))
        array([0., 0., 0., 1.])
    """
    q = as_float_array(quaternions, "quaternions", (4,))
    xp = namespace(q)
    return q / xp.sqrt(xp.sum(q * q, -1, keepdims=True))


def quat_slerp(q0: Any, q1: Any, t: Any) -> Any:
    """Spherical linear interpolation from ``q0`` (t = 0) to ``q1`` (t = 1)
    along the shorter arc. ``t`` broadcasts against the quaternions' batch
    shape (a scalar, or an array of shape ``(...)``).

    Example:
        >>> q1 = axis_angle_to_quat(np.array([0.0, 0.0, 1.0]))
        >>> quat_to_axis_angle(quat_slerp(np.array([0.0, 0.0, 0.0, 1.0]), q1, 0.25)).round(6)
        array([0.  , 0.  , 0.25])
    """
    q0 = quat_normalize(as_float_array(q0, "q0", (4,)))
    q1 = quat_normalize(as_float_array(q1, "q1", (4,)))
    xp = namespace(q0)
    if namespace(t) is not xp or not hasattr(t, "shape"):
        t = q0[..., :1] * 0.0 + t  # a scalar or list: same library and dtype as q0
    else:
        t = t[..., None]
    dot = xp.sum(q0 * q1, -1, keepdims=True)
    q1 = xp.where(dot < 0, -q1, q1)
    # The angle between q0 and q1 on the unit sphere, from the two chords: accurate at every angle
    # (acos of the dot product loses half the digits near 0). |q0 + q1| >= sqrt(2) here.
    chord = _safe_sqrt(xp, xp.sum((q1 - q0) * (q1 - q0), -1, keepdims=True))
    theta = 2.0 * xp.atan2(chord, xp.sqrt(xp.sum((q1 + q0) * (q1 + q0), -1, keepdims=True)))
    small = theta < _SMALL_ANGLE
    theta_big = xp.where(small, 1.0, theta)
    sin_theta = xp.sin(theta_big)
    theta2 = theta * theta

    def weight(s):
        # sin(s theta) / sin(theta), by its Taylor series for small theta.
        series = s * (
            1.0 + (1.0 - s * s) * theta2 / 6.0 + (1.0 - s * s) * (7.0 - 3.0 * s * s) * theta2 * theta2 / 360.0
        )
        return xp.where(small, series, xp.sin(s * theta_big) / sin_theta)

    return quat_normalize(weight(1.0 - t) * q0 + weight(t) * q1)


def quat_apply(quaternions: Any, vectors: Any) -> Any:
    """Rotates vectors ``(..., 3)`` by xyzw quaternions ``(..., 4)``.

    Example:
        >>> q = axis_angle_to_quat(np.array([0.0, 0.0, np.pi / 2]))
        >>> quat_apply(q, np.array([1.0, 0.0, 0.0])).round(6)
        array([0., 1., 0.])
    """
    q = quat_normalize(quaternions)
    v = as_float_array(vectors, "vectors", (3,))
    xp = namespace(q)
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * _cross(xp, u, v)
    return v + w * t + _cross(xp, u, t)


def geodesic_angle(r1: Any, r2: Any) -> Any:
    """Angle in radians (``[0, pi]``) of the rotation taking ``r1`` to ``r2``:
    the geodesic distance on SO(3). Both are matrices ``(..., 3, 3)`` or both
    xyzw quaternions ``(..., 4)``; the result has shape ``(...)``.

    Example:
        >>> print(geodesic_angle(np.eye(3), np.diag([1.0, -1.0, -1.0])).round(6))
        3.141593
    """
    xp_probe = r1 if hasattr(r1, "shape") else r2
    if hasattr(xp_probe, "shape") and tuple(xp_probe.shape[-1:]) == (4,):
        q = quat_multiply(quat_inverse(r1), as_float_array(r2, "r2", (4,)))
        xp = namespace(q)
        s = _safe_sqrt(xp, xp.sum(q[..., :3] * q[..., :3], -1))
        return 2.0 * _safe_atan2(xp, s, xp.abs(q[..., 3]))
    a = as_float_array(r1, "r1", (3, 3))
    b = as_float_array(r2, "r2", (3, 3))
    xp = namespace(a)
    m = xp.matmul(xp.transpose(a), b)
    v = xp.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    sin2 = _safe_sqrt(xp, xp.sum(v * v, -1))  # 2 sin(angle)
    cos2 = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0  # 2 cos(angle)
    return _safe_atan2(xp, sin2, cos2)


# -- helpers -------------------------------------------------------------------------------------

_AXES = {"x": 0, "y": 1, "z": 2}


def _parse_order(order: str) -> tuple[tuple[int, int, int], bool]:
    if not isinstance(order, str) or len(order) != 3 or not (order.islower() or order.isupper()):
        raise ValueError(
            f"order must be three axis letters, all lowercase (extrinsic) or uppercase (intrinsic), got {order!r}"
        )
    low = order.lower()
    if any(c not in _AXES for c in low) or low[0] == low[1] or low[1] == low[2]:
        raise ValueError(f"order must use axes x, y, z with no axis twice in a row, got {order!r}")
    return (_AXES[low[0]], _AXES[low[1]], _AXES[low[2]]), order.islower()


def _times_axis_rotation(q: list, axis: int, s: Any, c: Any) -> list:
    """Components of q * (s e_axis + c): q (as [x, y, z, w] component arrays)
    times the rotation about one coordinate axis with half-angle sine s and
    cosine c, using that the second factor has a single vector component."""
    b, d = (axis + 1) % 3, (axis + 2) % 3  # the next two axes, cyclically
    out = [None, None, None, c * q[3] - s * q[axis]]
    out[axis] = c * q[axis] + s * q[3]
    out[b] = c * q[b] + s * q[d]
    out[d] = c * q[d] - s * q[b]
    return out


def _cross(xp, a, b):
    return xp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        -1,
    )


def _safe_sqrt(xp, x):
    """sqrt with a finite (zero) gradient at 0."""
    positive = x > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, x, 1.0)), 0.0 * x)


def _safe_atan2(xp, y, x):
    """atan2 that is 0, with a zero gradient, at the origin."""
    origin = (y == 0) & (x == 0)
    return xp.where(origin, 0.0 * x, xp.atan2(y, xp.where(origin, 1.0, x)))


def _wrap_angle(xp, a):
    return xp.where(a > xp.pi, a - 2.0 * xp.pi, xp.where(a < -xp.pi, a + 2.0 * xp.pi, a))
