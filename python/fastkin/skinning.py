"""Skinning: per-joint transforms of a posed skeleton, linear blend skinning
(LBS) and dual-quaternion skinning (DQS). numpy in -> numpy out; torch in ->
torch out, differentiable (CPU tensors run the compiled kernels through the
custom ops ``fastkin::skin`` and ``fastkin::skin_backward``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import _core
from ._backend import is_torch
from .kinematics import _float_array, fk_batch
from .skeleton import Skeleton

__all__ = ["skinning_transforms", "lbs", "dqs", "top_k_weights"]


def skinning_transforms(
    skeleton: Skeleton, world_rotations: Any, world_positions: Any, inverse_bind: Any | None = None
) -> Any:
    """Per-joint skinning transforms ``W_j · Bind_j⁻¹`` as ``(..., J, 3, 4)``
    row-major ``[R | t]`` matrices, the input of :func:`lbs` and :func:`dqs`.

    Args:
        skeleton: the :class:`fastkin.Skeleton`.
        world_rotations: ``(..., J, 3, 3)`` posed world rotations (from
            :func:`fastkin.fk_batch`).
        world_positions: ``(..., J, 3)`` posed world positions.
        inverse_bind: optional ``(J, 4, 4)`` or ``(J, 3, 4)`` inverse bind
            matrices (glTF's ``inverseBindMatrices``, which map mesh space to
            each joint's frame at bind time). Omitted: the bind pose is the
            skeleton's rest pose (``skeleton.rest_pose()``), so the rest pose
            gives identity transforms.

    Returns:
        ``(..., J, 3, 4)`` in the dtype of ``world_rotations``; torch tensors
        stay differentiable.

    Example:
        >>> import numpy as np, fastkin
        >>> arm = fastkin.Skeleton([-1, 0], [[0, 0, 0], [1, 0, 0]])
        >>> rest = fastkin.fk_batch(arm, arm.rest_rotations)
        >>> fastkin.skinning_transforms(arm, *rest)[1].round(6)
        array([[1., 0., 0., 0.],
               [0., 1., 0., 0.],
               [0., 0., 1., 0.]])
    """
    if not isinstance(skeleton, Skeleton):
        raise TypeError(f"skeleton must be a fastkin.Skeleton, got {type(skeleton).__name__}")
    J = skeleton.num_joints
    torch_in = is_torch(world_rotations)
    if tuple(world_rotations.shape[-3:]) != (J, 3, 3):
        raise ValueError(f"world_rotations must have shape (..., {J}, 3, 3), got {tuple(world_rotations.shape)}")
    if tuple(world_positions.shape) != tuple(world_rotations.shape[:-2]) + (3,):
        raise ValueError(
            f"world_positions must have shape {tuple(world_rotations.shape[:-2]) + (3,)}, got {tuple(world_positions.shape)}"
        )
    bind = _inverse_bind(skeleton) if inverse_bind is None else _checked_inverse_bind(inverse_bind, J)
    if torch_in:
        import torch

        bind_t = torch.as_tensor(bind, dtype=world_rotations.dtype, device=world_rotations.device)
        rotation = world_rotations @ bind_t[:, :, :3]
        translation = (world_rotations @ bind_t[:, :, 3:])[..., 0] + world_positions
        return torch.cat([rotation, translation[..., None]], dim=-1)
    world_rotations = np.asarray(world_rotations)
    dtype = world_rotations.dtype if world_rotations.dtype.char in "fd" else np.float64
    bind = bind.astype(dtype)
    out = np.empty(world_rotations.shape[:-1] + (4,), dtype)
    np.matmul(world_rotations, bind[:, :, :3], out=out[..., :3])
    out[..., 3] = (world_rotations @ bind[:, :, 3:])[..., 0] + world_positions
    return out


def lbs(transforms: Any, vertices: Any, joint_indices: Any, weights: Any, normals: Any | None = None) -> Any:
    """Linear blend skinning: ``v' = Σ_k w_k M_{j_k} [v; 1] / Σ_k w_k``.

    Args:
        transforms: ``(..., J, 3, 4)`` skinning transforms (see
            :func:`skinning_transforms`); float32 or float64.
        vertices: ``(V, 3)`` shared by every pose, or ``(..., V, 3)`` with the
            batch shape of ``transforms`` (e.g. after blend shapes).
        joint_indices: ``(V, K)`` integer joint of each influence, in ``[0, J)``
            (int32 avoids a conversion).
        weights: ``(V, K)`` weights, finite and ``>= 0``, not all zero for a
            vertex. They are used divided by their sum; when a vertex's sum is
            off 1 by more than 1e-3 a ``RuntimeWarning`` says how many are.
        normals: optional ``(V, 3)`` or ``(..., V, 3)`` normals, rotated by the
            blended linear part and renormalised.

    Returns:
        Skinned vertices ``(..., V, 3)``, or ``(vertices, normals)`` when
        ``normals`` is given. torch tensors are differentiable with respect
        to ``transforms``, ``vertices`` and ``weights``.

    Example:
        >>> import numpy as np, fastkin
        >>> shift = np.array([[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
        ...                   [[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0]]], dtype=float)
        >>> fastkin.lbs(shift, [[0, 0, 0]], [[0, 1]], [[0.5, 0.5]])
        array([[1., 0., 0.]])
    """
    return _skin("linear", transforms, vertices, joint_indices, weights, normals)


def dqs(transforms: Any, vertices: Any, joint_indices: Any, weights: Any, normals: Any | None = None) -> Any:
    """Dual-quaternion skinning: the joints' rigid transforms as unit dual
    quaternions, blended with the weights (each flipped onto the hemisphere
    of the vertex's first influence), normalised and applied. Unlike LBS it
    keeps volume at twisting joints (no "candy wrapper").

    Arguments and result as :func:`lbs`; ``transforms`` must be rigid (a
    rotation and a translation, to 1e-4), otherwise a ``ValueError`` names
    the first that is not. torch tensors are differentiable with respect to
    ``transforms``, ``vertices`` and ``weights``.

    Example:
        >>> import numpy as np, fastkin
        >>> turn = fastkin.rotations.axis_angle_to_matrix(np.array([[0, 0, 0], [0, 0, np.pi / 2]]))
        >>> transforms = np.concatenate([turn, np.zeros((2, 3, 1))], axis=-1)
        >>> fastkin.dqs(transforms, [[1, 0, 0]], [[0, 1]], [[0.5, 0.5]]).round(6)  # 45 degrees, radius kept
        array([[0.707107, 0.707107, 0.      ]])
    """
    return _skin("dual_quaternion", transforms, vertices, joint_indices, weights, normals)


def top_k_weights(dense_weights: Any, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Sparse influences from dense ``(V, J)`` skinning weights: the ``k``
    largest weights of each vertex (ties: lower joint first) and their joint
    indices, renormalised to sum to 1.

    Returns:
        ``(joint_indices (V, k) int32, weights (V, k))`` in the dtype of
        ``dense_weights`` (float64 for other input), ordered by decreasing
        weight.

    Example:
        >>> import fastkin
        >>> joints, weights = fastkin.top_k_weights([[0.1, 0.6, 0.3]], k=2)
        >>> joints, weights.round(3)
        (array([[1, 2]], dtype=int32), array([[0.667, 0.333]]))
    """
    dense = np.asarray(dense_weights)
    if dense.dtype.char not in "fd":
        if dense.dtype.kind not in "iub":
            raise TypeError(f"dense_weights must be a real array, got dtype {dense.dtype}")
        dense = dense.astype(np.float64)
    if dense.ndim != 2 or dense.shape[1] < 1:
        raise ValueError(f"dense_weights must have shape (V, J), got {dense.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= dense.shape[1]:
        raise ValueError(f"k must be an int in [1, {dense.shape[1]}] (the number of joints), got {k!r}")
    if not np.isfinite(dense).all() or (dense < 0).any():
        raise ValueError("dense_weights must be finite and >= 0")
    order = np.argsort(-dense, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(dense, order, axis=1)
    sums = top.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError(f"dense_weights[{int(np.argmax(sums[:, 0] <= 0))}] are all zero: that vertex has no influence")
    return order.astype(np.int32), top / sums


# -- private helpers ------------------------------------------------------------------------------


def _skin(method: str, transforms, vertices, joint_indices, weights, normals):
    if type(transforms) is not np.ndarray and is_torch(transforms):
        from ._torch_skinning import skin_torch

        return skin_torch(method, transforms, vertices, joint_indices, weights, normals)
    transforms = _float_array(transforms, "transforms", None)
    _check_transforms_shape(transforms)
    dtype = transforms.dtype
    vertices = _float_array(vertices, "vertices", dtype, "transforms")
    joint_indices = index_array(joint_indices)
    weights = _float_array(weights, "weights", dtype, "transforms")
    moved = _skin_numpy(method, transforms, vertices, joint_indices, weights, True)
    if normals is None:
        return moved
    turned = _skin_numpy(
        method, transforms, _float_array(normals, "normals", dtype, "transforms"), joint_indices, weights, False
    )
    length = np.linalg.norm(turned, axis=-1, keepdims=True)
    return moved, turned / np.maximum(length, np.finfo(dtype).tiny)


def _skin_numpy(method, transforms, vertices, joint_indices, weights, points):
    finite, unnormalized, out = _core.skin_forward(method, transforms, vertices, joint_indices, weights, points, None)
    warn_unnormalized(unnormalized, stacklevel=5)
    if not finite:
        raise_nonfinite(method, transforms, vertices if points else None, vertices if not points else None)
    return out


def _check_transforms_shape(transforms) -> None:
    shape = tuple(transforms.shape)
    if len(shape) < 3 or shape[-2:] != (3, 4):
        raise ValueError(f"transforms must have shape (..., J, 3, 4), got {shape}")


def index_array(joint_indices: Any) -> np.ndarray:
    """joint_indices as a C-contiguous int32 numpy array, refusing values a
    cast to int32 would wrap (they are out of range whatever J is)."""
    if type(joint_indices) is np.ndarray and joint_indices.dtype == np.int32 and joint_indices.flags.c_contiguous:
        return joint_indices  # the common case, checked first: this runs on every call
    if is_torch(joint_indices):
        joint_indices = joint_indices.detach().cpu().numpy()
    array = np.asarray(joint_indices)
    if array.dtype != np.int32:
        if array.dtype.kind not in "iu":
            raise TypeError(f"joint_indices must be an integer array, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int32).max):
            bad = np.unravel_index(np.argmax((array < 0) | (array > np.iinfo(np.int32).max)), array.shape)
            raise ValueError(f"joint_indices{list(map(int, bad))} = {array[bad]} is not a joint index")
        array = array.astype(np.int32)
    return np.ascontiguousarray(array)


def warn_unnormalized(count: int, stacklevel: int) -> None:
    if count:
        warnings.warn(
            f"weights of {count} vertices do not sum to 1 (within 1e-3); they are used divided by their sum",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def raise_nonfinite(method: str, transforms, vertices, normals) -> None:
    """Raises the ValueError for a skinning call whose output was not finite,
    naming the argument responsible (numpy arrays or torch tensors)."""
    for name, value in (("transforms", transforms), ("vertices", vertices), ("normals", normals)):
        if value is not None and not bool((value == value).all() and (abs(value) != float("inf")).all()):
            raise ValueError(f"{name} must be finite (it holds NaN or infinity)")
    if method == "dual_quaternion":
        raise ValueError("a vertex's blended dual quaternion is zero (its influences cancel out); check transforms")
    raise ValueError("skinning overflowed: transforms or vertices are too large for the dtype")


def _inverse_bind(skeleton: Skeleton) -> np.ndarray:
    """(J, 3, 4) float64 inverse of the rest pose's world transforms, cached."""
    cached = skeleton._torch_cache.get("inverse_bind")
    if cached is None:
        rotations, positions = fk_batch(skeleton, np.asarray(skeleton.rest_rotations, np.float64))
        inverse = np.swapaxes(rotations, -1, -2)
        cached = np.concatenate([inverse, -(inverse @ positions[..., None])], axis=-1)
        cached.setflags(write=False)
        skeleton._torch_cache["inverse_bind"] = cached
    return cached


def _checked_inverse_bind(inverse_bind: Any, num_joints: int) -> np.ndarray:
    if is_torch(inverse_bind):
        inverse_bind = inverse_bind.detach().cpu().numpy()
    bind = np.asarray(inverse_bind, dtype=np.float64)
    if bind.shape not in ((num_joints, 4, 4), (num_joints, 3, 4)):
        raise ValueError(f"inverse_bind must have shape ({num_joints}, 4, 4) or ({num_joints}, 3, 4), got {bind.shape}")
    if not np.isfinite(bind).all():
        raise ValueError("inverse_bind must be finite (it holds NaN or infinity)")
    return bind[:, :3, :]
